package temporalcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The SQL plugin of both stores (database/sql over lib/pq; postgres12_pgx is
// the pgx-based equivalent).
const plugin = "postgres12"

// The versioned schema directories under the module's schema/.
const (
	schemaTemporal   = "postgresql/v12/temporal/versioned"
	schemaVisibility = "postgresql/v12/visibility/versioned"
)

// postgresTarget is what the base URL says.
type postgresTarget struct {
	user, password string
	host           string
	port           int
	database       string // connected to for CREATE and DROP DATABASE
}

// parsePostgresURL reads postgres://user[:password]@host[:port][/database].
// The cluster talks to PostgreSQL in plain TCP (the SQL plugins' TLS
// settings are not wired here), so an sslmode asking for TLS is refused
// rather than ignored.
func parsePostgresURL(raw string) (postgresTarget, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included: keep only its cause.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return postgresTarget{}, fmt.Errorf("PostgreSQL URL (%s): %w", EnvPostgres+" or Options.PostgresURL", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return postgresTarget{}, fmt.Errorf("PostgreSQL URL %q: scheme %q, want postgres", redact(u), u.Scheme)
	}
	if u.Hostname() == "" {
		return postgresTarget{}, fmt.Errorf("PostgreSQL URL %q: no host (Unix sockets are not supported)", redact(u))
	}
	t := postgresTarget{user: u.User.Username(), host: u.Hostname(), port: 5432, database: strings.TrimPrefix(u.Path, "/")}
	t.password, _ = u.User.Password()
	if t.user == "" {
		t.user = "postgres"
	}
	if t.database == "" {
		t.database = "postgres"
	}
	if p := u.Port(); p != "" {
		if t.port, err = strconv.Atoi(p); err != nil {
			return postgresTarget{}, fmt.Errorf("PostgreSQL URL %q: port %q: %w", redact(u), p, err)
		}
	}
	switch mode := u.Query().Get("sslmode"); mode {
	case "", "disable", "allow", "prefer":
	default:
		return postgresTarget{}, fmt.Errorf("PostgreSQL URL %q: sslmode=%s is not supported (plain TCP only)", redact(u), mode)
	}
	return t, nil
}

func redact(u *url.URL) string { return u.Redacted() }

func (t postgresTarget) address() string { return net.JoinHostPort(t.host, strconv.Itoa(t.port)) }

// ping checks PostgreSQL accepts TCP connections; temporal-sql-tool then
// reports anything else (authentication, permissions) by name.
func (t postgresTarget) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", t.address())
	if err != nil {
		return fmt.Errorf("%w at %s (%s overrides the URL): %v", ErrNoPostgres, t.address(), EnvPostgres, err)
	}
	conn.Close()
	return nil
}

type databases struct{ temporal, visibility string }

// sqlTool runs temporal-sql-tool. Its output goes to logPath.
type sqlTool struct {
	path    string
	logPath string
	pg      postgresTarget
}

// setup creates both databases and brings their schema to the version the
// server expects. It runs what an operator (or a one-shot schema job) runs,
// with SCHEMA=<module>/schema:
//
//	temporal-sql-tool --plugin postgres12 --ep HOST -p PORT -u USER --db DB create-database --defaultdb postgres
//	temporal-sql-tool --plugin postgres12 --ep HOST -p PORT -u USER --db DB setup-schema -v 0.0
//	temporal-sql-tool --plugin postgres12 --ep HOST -p PORT -u USER --db DB update-schema -d $SCHEMA/postgresql/v12/temporal/versioned
//
// and the same for the visibility database with .../visibility/versioned.
// The password, if any, travels in SQL_PASSWORD rather than on the command line.
func (t sqlTool) setup(ctx context.Context, dbs databases, schemaDir string) error {
	for _, db := range []struct{ name, dir string }{
		{dbs.temporal, filepath.Join(schemaDir, schemaTemporal)},
		{dbs.visibility, filepath.Join(schemaDir, schemaVisibility)},
	} {
		for _, step := range [][]string{
			{"create-database", "--defaultdb", t.pg.database},
			{"setup-schema", "-v", "0.0"},
			{"update-schema", "-d", db.dir},
		} {
			if err := t.run(ctx, db.name, step...); err != nil {
				return err
			}
		}
	}
	return nil
}

// drop drops both databases (DROP DATABASE IF EXISTS: absent is fine; and
// create-database, for its part, accepts an existing database, hence the
// random names).
func (t sqlTool) drop(ctx context.Context, dbs databases) error {
	var errs []error
	for _, db := range []string{dbs.temporal, dbs.visibility} {
		errs = append(errs, t.run(ctx, db, "drop-database", "--defaultdb", t.pg.database, "--force"))
	}
	return errors.Join(errs...)
}

func (t sqlTool) run(ctx context.Context, db string, args ...string) error {
	full := append([]string{"--plugin", plugin, "--ep", t.pg.host, "-p", strconv.Itoa(t.pg.port), "-u", t.pg.user, "--db", db}, args...)
	cmd := exec.CommandContext(ctx, t.path, full...)
	// Only what is set here: SQL_* variables of the caller would override defaults.
	cmd.Env = []string{}
	if t.pg.password != "" {
		cmd.Env = append(cmd.Env, "SQL_PASSWORD="+t.pg.password)
	}
	out, err := cmd.CombinedOutput()
	if f, ferr := os.OpenFile(t.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); ferr == nil {
		fmt.Fprintf(f, "---- temporal-sql-tool %s\n%s", strings.Join(full, " "), out)
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("temporal-sql-tool %s on database %s at %s: %w: %s", args[0], db, t.pg.address(), err, lastLines(out, 5))
	}
	return nil
}

// moduleSchemaDir is go.temporal.io/server@ServerVersion's schema directory
// in the module cache, where `go install` (make tools-cluster) put it.
func moduleSchemaDir() (string, error) {
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		out, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err != nil {
			return "", fmt.Errorf("temporalcluster: go env GOMODCACHE (or set Options.SchemaDir): %w", err)
		}
		cache = strings.TrimSpace(string(out))
	}
	return filepath.Join(cache, "go.temporal.io", "server@"+ServerVersion, "schema"), nil
}

// lastLines is the end of a command's output, for an error message.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
