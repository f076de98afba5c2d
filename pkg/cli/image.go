package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/urfave/cli/v2"

	"github.com/kubecc/kubecc/pkg/image"
	"github.com/kubecc/kubecc/pkg/selfimage"
)

func imageCommand(version string) *cli.Command {
	return &cli.Command{
		Name:  "image",
		Usage: "images of kubecc itself",
		Subcommands: []*cli.Command{{
			Name:  "self",
			Usage: "push kubecc's own image (hooks and CLI under /opt/kubecc/bin, and the installer an init container runs); prints name@digest",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "to", Usage: "image reference to push to", Required: true},
				&cli.StringFlag{Name: "bin", Usage: "folder holding the binaries (default: the one this kubecc runs from)"},
				&cli.StringFlag{Name: "base", Usage: "layer the files onto this image instead (e.g. your peer image)"},
				&cli.StringFlag{Name: "revision", Usage: "source revision for the OCI annotations (default: the version)"},
				&cli.BoolFlag{Name: "insecure", Usage: "plain HTTP to the registries named by --to and --base"},
			},
			Action: func(c *cli.Context) error { return imageSelf(c, version) },
		}},
	}
}

func imageSelf(c *cli.Context, version string) error {
	to := c.String("to")
	if _, err := name.ParseReference(to); err != nil {
		return fmt.Errorf("image self: --to %q: %w", to, err)
	}
	binDir := c.String("bin")
	if binDir == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("image self: %w", err)
		}
		binDir = filepath.Dir(self)
	}
	created, err := sourceDate()
	if err != nil {
		return err
	}
	insecure := c.Bool("insecure")
	reg := &image.Registry{Insecure: func(string) bool { return insecure }}
	ctx, cancel := signalContext(c)
	defer cancel()
	opts := selfimage.Options{BinDir: binDir, Version: version, Revision: c.String("revision"), Source: "https://github.com/kubecc/kubecc", Created: created, Arch: runtime.GOARCH}
	if opts.Revision == "" {
		opts.Revision = version
	}
	if base := c.String("base"); base != "" {
		if opts.Base, err = reg.Image(ctx, base, v1.Platform{OS: "linux", Architecture: runtime.GOARCH}); err != nil {
			return fmt.Errorf("image self: --base: %w", err)
		}
	}
	img, err := selfimage.Build(opts)
	if err != nil {
		return err
	}
	digest, err := reg.Push(ctx, to, img)
	if err != nil {
		return err
	}
	ref, _ := name.ParseReference(to)
	size, _ := image.Size(img)
	_, _ = fmt.Fprintf(c.App.ErrWriter, "kubecc: pushed kubecc's own image, %d bytes compressed\n", size)
	_, err = fmt.Fprintf(c.App.Writer, "%s@%s\n", ref.Context().Name(), digest)
	return err
}

// sourceDate is SOURCE_DATE_EPOCH, or the epoch: the image's date must come from the
// source, not the clock, for the same commit to give the same digest.
func sourceDate() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("env SOURCE_DATE_EPOCH: want seconds since 1970, got %q", v)
	}
	return time.Unix(n, 0).UTC(), nil
}
