// Command fabricimage packs a static Fabric peer or orderer binary and Fabric's
// sampleconfig into an image laid out like the official hyperledger/fabric-peer and
// fabric-orderer images, and pushes it to a registry over plain HTTP (the e2e harness's
// local registry), without a Docker daemon:
//
//	/usr/local/bin/NAME             the binary (static: the image has no libc and no shell)
//	/etc/hyperledger/fabric/        core.yaml, orderer.yaml, configtx.yaml, msp/ (FABRIC_CFG_PATH)
//	/etc/passwd, /etc/group         root and fabric (uid/gid 1000), the user the image runs as
//	/tmp                            1777
//	/var/hyperledger/production     owned by 1000:1000
//
// The image is reproducible (every time is the Unix epoch): the same inputs give the same
// digest, so pushing again moves no blobs. It prints name@digest as its last line.
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubecc/kubecc/pkg/image"
)

const (
	cfgPath  = "/etc/hyperledger/fabric"
	dataPath = "/var/hyperledger/production"
	uid      = 1000
)

func main() {
	nameFlag := flag.String("name", "", "peer or orderer: the binary's name in /usr/local/bin and the default command (required)")
	bin := flag.String("binary", "", "path of the static binary (required)")
	cfgDir := flag.String("config", "", "folder whose contents go to "+cfgPath+" (Fabric's sampleconfig; required)")
	ref := flag.String("ref", "", "image reference to push to over plain HTTP (required)")
	version := flag.String("version", "", "Fabric version, recorded in the image's labels")
	arch := flag.String("arch", "amd64", "image architecture")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("fabricimage: ")
	if *nameFlag == "" || *bin == "" || *cfgDir == "" || *ref == "" {
		flag.Usage()
		os.Exit(2)
	}
	var cmd []string
	var ports []string
	switch *nameFlag {
	case "peer":
		cmd, ports = []string{"peer", "node", "start"}, []string{"7051/tcp", "7052/tcp", "9443/tcp"}
	case "orderer":
		cmd, ports = []string{"orderer"}, []string{"7050/tcp", "7053/tcp", "9443/tcp"}
	default:
		log.Fatalf("-name must be peer or orderer, not %q", *nameFlag)
	}
	epoch := time.Unix(0, 0).UTC()

	base := []image.Entry{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nfabric:x:%d:%d:fabric:%s:/sbin/nologin\n", uid, uid, dataPath))},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(fmt.Sprintf("root:x:0:\nfabric:x:%d:\n", uid))},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
		{Path: "/var/hyperledger", Dir: true, Mode: 0o755},
		{Path: dataPath, Dir: true, Mode: 0o755, UID: uid, GID: uid},
		{Path: cfgPath, Dir: true, Mode: 0o755},
	}
	cfgEntries, err := tree(*cfgDir, cfgPath)
	if err != nil {
		log.Fatal(err)
	}
	data, err := os.ReadFile(*bin)
	if err != nil {
		log.Fatal(err)
	}
	layers := []struct {
		entries []image.Entry
		by      string
	}{
		{base, "fabricimage: users, /tmp, " + dataPath},
		{cfgEntries, "fabricimage: Fabric sampleconfig in " + cfgPath},
		{[]image.Entry{{Path: "/usr/local/bin/" + *nameFlag, Mode: 0o755, Data: data}}, "fabricimage: static " + *nameFlag},
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		layer, err := image.Layer(l.entries, epoch)
		if err != nil {
			log.Fatal(err)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer, History: v1.History{CreatedBy: l.by, Created: v1.Time{Time: epoch}}})
		if err != nil {
			log.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		log.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = *arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Env = []string{"PATH=/usr/local/bin", "FABRIC_CFG_PATH=" + cfgPath}
	cf.Config.Cmd = cmd
	cf.Config.User = fmt.Sprintf("%d:%d", uid, uid)
	cf.Config.WorkingDir = "/"
	cf.Config.ExposedPorts = map[string]struct{}{}
	for _, p := range ports {
		cf.Config.ExposedPorts[p] = struct{}{}
	}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "fabric-" + *nameFlag,
		"org.opencontainers.image.version":     *version,
		"org.opencontainers.image.description": "static Hyperledger Fabric " + *nameFlag + " (CGO_ENABLED=0), no shell; built by kubecc's e2e/tools/fabricimage",
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		log.Fatal(err)
	}

	r, err := name.ParseReference(*ref, name.Insecure)
	if err != nil {
		log.Fatal(err)
	}
	size, _ := image.Size(img)
	log.Printf("pushing %s (%.1f MB compressed)", r, float64(size)/1e6)
	if err := remote.Write(r, img, remote.WithAuth(authn.Anonymous)); err != nil {
		log.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s@%s\n", r.Context().Name(), d)
}

// tree returns the files and folders under dir as entries below dest, root-owned and
// world-readable (config, not secrets: the sampleconfig's MSP is a well-known sample).
func tree(dir, dest string) ([]image.Entry, error) {
	var out []image.Entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		target := path.Join(dest, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			out = append(out, image.Entry{Path: target, Dir: true, Mode: 0o755})
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, image.Entry{Path: target, Mode: 0o644, Data: b})
		default:
			return fmt.Errorf("%s: not a file or folder", p)
		}
		return nil
	})
	return out, err
}
