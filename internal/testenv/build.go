package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build builds worker, starter and the example receiver from the
// repository at root into dir, once for a run: the processes it starts are
// what the working tree holds. $GO names the go command if set.
func Build(ctx context.Context, root, dir string) error {
	goTool := os.Getenv("GO")
	if goTool == "" {
		goTool = "go"
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", dir+string(filepath.Separator), "./worker", "./starter", "./examples/receiver")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./worker ./starter ./examples/receiver: %w\n%s", err, out)
	}
	return nil
}
