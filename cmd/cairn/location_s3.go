package main

import (
	"context"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/s3"
)

// s3Config parses an s3: location and applies the s3.* options.
func s3Config(loc string, env locEnv) (s3.Config, error) {
	cfg, err := s3.ParseLocation(loc)
	if err != nil {
		return cfg, err
	}
	for _, o := range env.Options {
		if o.scheme == "s3" {
			if err := cfg.SetOption(o.key, o.value); err != nil {
				return cfg, err
			}
		}
	}
	return cfg, nil
}

// s3Scheme opens s3: locations (backend/s3); they get the wrappers of every
// remote backend (remote: connection bound, retries).
func s3Scheme() scheme {
	with := func(f func(context.Context, s3.Config) (*s3.Backend, error)) func(ctx context.Context, loc, _ string, env locEnv) (backend.Backend, error) {
		return func(ctx context.Context, loc, _ string, env locEnv) (backend.Backend, error) {
			cfg, err := s3Config(loc, env)
			if err != nil {
				return nil, err
			}
			be, err := connectRetry(ctx, env, func() (*s3.Backend, error) { return f(ctx, cfg) })
			if err != nil {
				return nil, err
			}
			return remote(be, env)
		}
	}
	return scheme{open: with(s3.Open), create: with(s3.Create), probe: with(s3.OpenDir)}
}

// s3OptionDocs documents the s3.* options.
func s3OptionDocs() schemeOptions {
	var docs []optionDoc
	for _, o := range s3.Options {
		docs = append(docs, optionDoc{key: o.Key, value: o.Value, help: o.Help})
	}
	return schemeOptions{docs: docs, check: func(opts []backendOption) error {
		var c s3.Config
		for _, o := range opts {
			if err := c.SetOption(o.key, o.value); err != nil {
				return err
			}
		}
		return nil
	}}
}
