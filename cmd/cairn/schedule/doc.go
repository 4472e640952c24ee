// Package schedule turns a profile's schedule (`cairn schedule install
// PROFILE --every ...`) into what runs it: a systemd service and timer
// (ServiceUnit, TimerUnit), or a crontab line (CronLine) where systemd is
// absent; it also finds, removes and reads back those crontab lines and
// computes a cron line's next run.
//
// It only builds and parses text: writing the files and running systemctl
// and crontab is the command's (cmd/cairn/cmd_schedule.go).
package schedule
