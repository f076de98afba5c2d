// Package cli is the kubecc command line (urfave/cli/v2): build, package, version.
package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/kubecc/kubecc/pkg/build"
	"github.com/kubecc/kubecc/pkg/builders"
	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/config"
	"github.com/kubecc/kubecc/pkg/fsutil"
)

// App is the kubecc CLI.
func App(version string) *cli.App {
	common := []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "builder config file (default: env KUBECC_CONFIG, else none)"},
		&cli.StringFlag{Name: "registry", Usage: "repository prefix to push to (overrides KUBECC_REGISTRY)"},
	}
	return &cli.App{
		Name:           "kubecc",
		Usage:          "build Fabric chaincode images without Docker and package them for the peer",
		Version:        version,
		HideVersion:    true,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{
				Name:      "build",
				Usage:     "build and push the image of a chaincode (a Go module folder, a Node.js or TypeScript project folder, or a peer package file); prints name@digest",
				ArgsUsage: "DIR|PACKAGE.tgz",
				Flags:     append(common, &cli.StringFlag{Name: "label", Usage: "package label when building a folder (default: the folder's name)"}),
				Action:    buildAction,
			},
			{
				Name:      "package",
				Usage:     "write an image package for `peer lifecycle chaincode install`; prints its package ID",
				ArgsUsage: "[DIR]",
				Flags: append(common,
					&cli.StringFlag{Name: "label", Usage: "package label", Required: true},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "package file to write", Required: true},
					&cli.StringFlag{Name: "image", Usage: "package this image (name:tag or name@digest) instead of building DIR"},
					&cli.StringFlag{Name: "launch", Usage: "launch mode: pod (resident) or job (serverless); default: the builder's"},
					&cli.StringFlag{Name: "idle-timeout", Usage: "job mode: exit after this long without transactions (0s: after each one)"},
				),
				Action: packageAction,
			},
			imageCommand(version),
			buildSourceCommand(),
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					_, err := fmt.Fprintf(c.App.Writer, "kubecc %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
					return err
				},
			},
		},
	}
}

func loadConfig(c *cli.Context) (*config.Config, error) {
	lookup := func(key string) (string, bool) {
		switch {
		case key == "KUBECC_CONFIG" && c.String("config") != "":
			return c.String("config"), true
		case key == "KUBECC_REGISTRY" && c.String("registry") != "":
			return c.String("registry"), true
		}
		return os.LookupEnv(key)
	}
	// The CLI has no builder folder: its config comes from --config or KUBECC_CONFIG.
	return config.Load("", lookup)
}

func signalContext(c *cli.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
}

func buildPackage(c *cli.Context, src string) (*build.Result, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := signalContext(c)
	defer cancel()
	b := builders.New(cfg, c.App.ErrWriter)
	u, err := build.Unpack(src, c.String("label"), b.Limits)
	if err != nil {
		return nil, err
	}
	defer func() { _ = u.Close() }()
	if u.Metadata.Kind() == chaincode.KindNone {
		return nil, fmt.Errorf("%s: metadata.json: field \"type\": kubecc builds golang, node and image packages, not %q", src, u.Metadata.Type)
	}
	return b.Build(ctx, u.Input)
}

func buildAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("build: want one DIR or PACKAGE argument, got %d", c.NArg())
	}
	res, err := buildPackage(c, c.Args().First())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.App.Writer, res.Image.Ref())
	return err
}

func packageAction(c *cli.Context) error {
	label, out, img := c.String("label"), c.String("output"), c.String("image")
	if !chaincode.LabelPattern.MatchString(label) {
		return fmt.Errorf("package: --label %q is not a valid package label", label)
	}
	if (img == "") == (c.NArg() == 0) {
		return fmt.Errorf("package: give either DIR or --image")
	}
	opts, err := launchOptions(c)
	if err != nil {
		return err
	}
	var ref chaincode.ImageRef
	if img != "" {
		cfg, err := loadConfig(c)
		if err != nil {
			return err
		}
		ctx, cancel := signalContext(c)
		defer cancel()
		b := build.New(cfg, c.App.ErrWriter)
		repo, digest, err := b.Registry.Resolve(ctx, img)
		if err != nil {
			return err
		}
		ref = chaincode.ImageRef{Name: repo, Digest: digest}
	} else {
		res, err := buildPackage(c, c.Args().First())
		if err != nil {
			return err
		}
		ref = res.Image
	}
	md := fmt.Appendf(nil, `{"type":"kubecc","label":%q}`, label)
	files := []chaincode.File{{Name: chaincode.ImageFile, Data: ref.Marshal()}}
	if opts != nil {
		files = append(files, chaincode.File{Name: chaincode.OptionsFile, Data: opts})
	}
	data, err := chaincode.BuildPackage(md, files)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(abs, data, 0o644); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(c.App.ErrWriter, "kubecc: wrote %s for %s\n", out, ref.Ref())
	_, err = fmt.Fprintln(c.App.Writer, chaincode.PackageID(label, data))
	return err
}

// launchOptions renders --launch and --idle-timeout as the package's kubecc.yaml (nil
// when neither is given).
func launchOptions(c *cli.Context) ([]byte, error) {
	launch, idle := c.String("launch"), c.String("idle-timeout")
	if launch == "" && idle == "" {
		return nil, nil
	}
	data := []byte{}
	if launch != "" {
		data = fmt.Appendf(data, "launch: %s\n", launch)
	}
	if idle != "" {
		data = fmt.Appendf(data, "idleTimeout: %s\n", idle)
	}
	if _, err := chaincode.ParseOptions("--launch/--idle-timeout", data); err != nil {
		return nil, err
	}
	return data, nil
}
