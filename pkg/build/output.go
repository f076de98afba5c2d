package build

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubecc/kubecc/pkg/chaincode"
	"github.com/kubecc/kubecc/pkg/fsutil"
)

// WriteOutput writes the build output folder: image.json and a copy of META-INF/.
// Each piece is written beside its final name and renamed, so a failed build leaves
// nothing the release or run hooks could mistake for a result.
func WriteOutput(outDir, srcDir string, res *Result) error {
	meta := filepath.Join(srcDir, "META-INF")
	if info, err := os.Stat(meta); err == nil && info.IsDir() {
		tmp, err := os.MkdirTemp(outDir, ".META-INF-")
		if err != nil {
			return fmt.Errorf("build output: %w", err)
		}
		if err := fsutil.CopyTree(meta, tmp); err != nil {
			_ = os.RemoveAll(tmp)
			return fmt.Errorf("copy META-INF: %w", err)
		}
		if err := os.Rename(tmp, filepath.Join(outDir, "META-INF")); err != nil {
			_ = os.RemoveAll(tmp)
			return fmt.Errorf("build output: %w", err)
		}
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(outDir, chaincode.BuildInfoFile), res.Info.Marshal(), 0o644); err != nil {
		return err
	}
	// image.json last: its presence marks a complete output.
	return fsutil.WriteFileAtomic(filepath.Join(outDir, chaincode.ImageFile), res.Image.Marshal(), 0o644)
}
