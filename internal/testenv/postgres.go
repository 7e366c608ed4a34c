package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/hookrelay/hookrelay/internal/temporalcluster"
)

// ErrNoPostgresBinaries says initdb and postgres were not found.
var ErrNoPostgresBinaries = errors.New("PostgreSQL's initdb and postgres not found")

// PostgresReady is the line PostgreSQL logs once it accepts connections.
const PostgresReady = "database system is ready to accept connections"

// PostgresOptions configure a PostgreSQL server of a test's own.
type PostgresOptions struct {
	// BinDir holds initdb and postgres. Default: the newest
	// /usr/lib/postgresql/*/bin (Debian's layout), else the directory of
	// initdb on PATH.
	BinDir string
	// LogDir receives postgres.log and initdb.log.
	LogDir string
}

// Postgres is a PostgreSQL server of its own: a fresh data directory in a
// temporary directory, trust authentication for the user postgres, on a free
// port of 127.0.0.1 only (no Unix socket), so nothing else on the machine
// sees it or is disturbed when it is killed. PostgreSQL refuses to run as
// root: as root, it runs as the postgres OS user, which owns the data
// directory. Its server process is a child of this one, killed with it.
type Postgres struct {
	bin, dir, data, logDir string
	port                   int
	cred                   *syscall.Credential
	proc                   *Process
}

// StartPostgres runs initdb, then the server, and returns once it accepts
// connections. On failure it removes what it made.
func StartPostgres(ctx context.Context, o PostgresOptions) (_ *Postgres, err error) {
	if o.LogDir == "" {
		return nil, errors.New("postgres: no directory for its log")
	}
	p := &Postgres{bin: o.BinDir, logDir: o.LogDir}
	if p.bin == "" {
		if p.bin, err = postgresBinDir(); err != nil {
			return nil, err
		}
	}
	if p.cred, err = postgresCredential(); err != nil {
		return nil, err
	}
	if p.port, err = temporalcluster.FreePort(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if p.dir, err = os.MkdirTemp("", "hookrelay-postgres-"); err != nil {
		return nil, fmt.Errorf("postgres: data dir: %w", err)
	}
	defer func() {
		if err != nil {
			p.Stop()
		}
	}()
	if p.cred != nil {
		if err := os.Chown(p.dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return nil, fmt.Errorf("postgres: give %s to the postgres user: %w", p.dir, err)
		}
	}
	p.data = filepath.Join(p.dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(p.bin, "initdb"), "--pgdata", p.data, "--username", "postgres",
		"--auth", "trust", "--encoding", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	initdb.Dir = p.dir // readable by the postgres user, unlike the caller's directory perhaps
	out, err := initdb.CombinedOutput()
	os.WriteFile(filepath.Join(o.LogDir, "initdb.log"), out, 0o600)
	if err != nil {
		return nil, fmt.Errorf("postgres: initdb %s: %w: %s", p.data, err, lastLines(string(out), 5))
	}
	return p, p.Start(ctx)
}

// Start starts the server on its data directory and port (again, after
// Kill) and returns once it accepts connections; after a kill that is once
// its crash recovery is done.
func (p *Postgres) Start(ctx context.Context) error {
	if p.proc != nil && p.proc.Running() {
		return fmt.Errorf("postgres on port %d: already running", p.port)
	}
	proc, err := Start(ctx, Spec{
		Name: "postgres", Path: filepath.Join(p.bin, "postgres"), LogDir: p.logDir, Credential: p.cred,
		Args: []string{"-D", p.data, "-p", strconv.Itoa(p.port), "-c", "listen_addresses=127.0.0.1",
			"-c", "unix_socket_directories=", "-c", "max_connections=300"},
		Dir:   p.dir,
		Ready: PostgresReady, ReadyTimeout: 2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("postgres on port %d: %w", p.port, err)
	}
	p.proc = proc
	return nil
}

// Kill kills the server and all its backends with SIGKILL, as a crash would:
// no shutdown checkpoint, connections cut. Start runs crash recovery.
func (p *Postgres) Kill() error {
	if p.proc == nil || !p.proc.Running() {
		return fmt.Errorf("postgres on port %d: not running", p.port)
	}
	return p.proc.Kill(30 * time.Second)
}

// URL is a base URL for the user postgres, as internal/temporalcluster takes it.
func (p *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// Port is the port it listens on, on 127.0.0.1.
func (p *Postgres) Port() int { return p.port }

// LogPath is the server's log.
func (p *Postgres) LogPath() string { return filepath.Join(p.logDir, "postgres.log") }

// Stop shuts the server down (SIGTERM: once no client is left) and removes
// its data directory.
func (p *Postgres) Stop() error {
	var err error
	if p.proc != nil {
		err = p.proc.Stop(30 * time.Second)
	}
	if p.dir != "" {
		if rmErr := os.RemoveAll(p.dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("postgres: remove %s: %w", p.dir, rmErr))
		}
	}
	return err
}

// postgresBinDir finds initdb: the newest Debian-style version directory,
// else PATH.
func postgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(a))))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b))))
		return vb - va
	})
	if len(dirs) > 0 {
		return filepath.Dir(dirs[0]), nil
	}
	if path, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(path), nil
	}
	return "", fmt.Errorf("%w in /usr/lib/postgresql/*/bin or on PATH", ErrNoPostgresBinaries)
}

// postgresCredential is the postgres OS user's, when this process runs as
// root (PostgreSQL refuses root); nil otherwise.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("postgres: running as root, PostgreSQL needs another user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres: gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
