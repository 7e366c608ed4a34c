// Package secretfile checks the files secrets are read from (payload keys,
// tokens, private keys): one that group or others may read is reported, so
// the process can warn at start. The file is still used: refusing would stop
// a fleet over a mode bit, while the warning names the fix.
package secretfile

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// Exposed says how path is readable beyond its owner, or returns nil when
// it is not (or cannot be examined: reading it reports that).
func Exposed(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if mode := info.Mode().Perm(); mode&0o044 != 0 {
		return &ExposedError{Path: path, Mode: mode}
	}
	return nil
}

// ExposedError is a secret file group or others may read.
type ExposedError struct {
	Path string
	Mode fs.FileMode
}

func (e *ExposedError) Error() string {
	return fmt.Sprintf("%s is readable by group or others (mode %04o); chmod 600 it, or 640 for a group only this service is in", e.Path, e.Mode)
}

// Warn logs a warning naming flag when the file it gives is exposed.
func Warn(logger *slog.Logger, flag, path string) {
	if path == "" || logger == nil {
		return
	}
	if err := Exposed(path); err != nil {
		logger.Warn("secret file readable by others", "flag", flag, "path", path, "mode", fmt.Sprintf("%04o", err.(*ExposedError).Mode), "fix", "chmod 600 "+path)
	}
}
