package main

import "github.com/urfave/cli/v2"

// repoCommands are the commands that work on a repository.
func (e *appEnv) repoCommands() []*cli.Command {
	return []*cli.Command{
		e.initCommand(),
		e.backupCommand(),
		e.restoreCommand(),
		e.snapshotsCommand(),
		e.lsCommand(),
		e.diffCommand(),
		e.findCommand(),
		e.statsCommand(),
		e.keyCommand(),
		e.unlockCommand(),
		e.checkCommand(),
		e.pruneCommand(),
		e.forgetCommand(),
		e.logCommand(),
		e.mirrorCommand(),
		e.recoveryKitCommand(),
		e.repairCommand(),
		e.rewriteCommand(),
		e.copyCommand(),
		e.mountCommand(),
		e.cacheCommand(),
		e.generateCommand(),
		e.listCommand(),
		e.catCommand(),
		e.dumpCommand(),
		e.tagCommand(),
		e.configCommand(), e.runCommand(),
	}
}
