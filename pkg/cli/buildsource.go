package cli

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/kubecc/kubecc/pkg/build"
	"github.com/kubecc/kubecc/pkg/build/cluster"
	"github.com/kubecc/kubecc/pkg/config"
)

// buildSourceCommand is the inside of a build Job: pull the source artifact, build
// here, report name@digest in the termination message.
func buildSourceCommand() *cli.Command {
	return &cli.Command{
		Name:   cluster.SourceCommand,
		Usage:  "inside a build Job: build a source artifact and report name@digest",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "source", Usage: "source artifact (name@digest)", Required: true},
			&cli.StringFlag{Name: "expect", Usage: "repository:content-hash the hook planned", Required: true},
			&cli.StringFlag{Name: "package-id", Usage: "package ID for the image label"},
			&cli.StringFlag{Name: "termination-log", Value: "/dev/termination-log", Usage: "where to write name@digest"},
		},
		Action: buildSourceAction,
	}
}

func buildSourceAction(c *cli.Context) error {
	cfg, err := config.Load("", os.LookupEnv)
	if err != nil {
		return err
	}
	cfg.BuildIn = config.BuildLocal
	ctx, cancel := signalContext(c)
	defer cancel()
	p := build.New(cfg, c.App.ErrWriter)
	dir, err := os.MkdirTemp("", "kubecc-source-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	md, code, err := cluster.PullSource(ctx, p.Registry, c.String("source"), dir, p.Limits)
	if err != nil {
		return err
	}
	res, err := p.Build(ctx, build.Input{SrcDir: code, Metadata: md, PackageID: c.String("package-id")})
	if err != nil {
		return err
	}
	if got := res.Image.Name + ":" + res.ContentHash; got != c.String("expect") {
		return fmt.Errorf("this build is %s, the build hook planned %s: the Job's settings differ from the hook's", got, c.String("expect"))
	}
	// /dev/termination-log is a file the kubelet mounts: written in place, not renamed.
	if err := os.WriteFile(c.String("termination-log"), []byte(res.Image.Ref()), 0o644); err != nil {
		return fmt.Errorf("termination log: %w", err)
	}
	_, err = fmt.Fprintln(c.App.Writer, res.Image.Ref())
	return err
}
