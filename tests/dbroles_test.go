package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookrelay/hookrelay/internal/auditstore"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// dbRoles is a fresh database set up by deploy/postgres/roles.sql (what
// compose's hookrelay-db job runs) with an owner role and a run-time role
// of their own, dropped after t.
type dbRoles struct {
	superuser, owner, app string // DSNs
	appRole               string
}

func newDBRoles(t *testing.T) dbRoles {
	t.Helper()
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatalf("psql runs deploy/postgres/roles.sql: %v", err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	owner, app := "hookrelay_test_owner_"+suffix, "hookrelay_test_app_"+suffix
	// Registered first, so it runs after the database is dropped.
	t.Cleanup(func() { dropRoles(t, owner, app) })
	super := testenv.PostgresT(t)
	u, err := url.Parse(super)
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(psql, "--no-psqlrc", "--quiet", "-v", "owner="+owner, "-v", "app="+app, "-v", "db="+db,
		"-f", filepath.Join(root, "deploy", "postgres", "roles.sql"), super)
	cmd.Env = append(os.Environ(), "HOOKRELAY_DB_OWNER_PASSWORD=fake-owner-"+suffix, "HOOKRELAY_DB_PASSWORD=fake-app-"+suffix)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("psql -f deploy/postgres/roles.sql: %v\n%s", err, out)
	}
	as := func(role, password string) string {
		v := *u
		v.User = url.UserPassword(role, password)
		return v.String()
	}
	return dbRoles{superuser: super, owner: as(owner, "fake-owner-"+suffix), app: as(app, "fake-app-"+suffix), appRole: app}
}

func dropRoles(t *testing.T, roles ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, testenv.PostgresServer())
	if err != nil {
		t.Errorf("drop roles: %v", err)
		return
	}
	defer c.Close(context.Background())
	for _, r := range roles {
		if _, err := c.Exec(ctx, "DROP ROLE IF EXISTS "+r); err != nil {
			t.Errorf("drop role %s: %v", r, err)
		}
	}
}

// TestDatabaseRuntimeRoleLeastPrivilege: the database as compose sets it up.
// A run-time process pointed at it before `starter migrate` refuses to
// start, naming the command; `starter migrate` as the owner role migrates
// the registry, the delivery log and the audit trail and grants the
// run-time role its privileges; as that role, each store works (the log
// creating and dropping its monthly partitions too), and the role can
// neither change nor drop a table, nor create one.
func TestDatabaseRuntimeRoleLeastPrivilege(t *testing.T) {
	d := newDBRoles(t)
	h := hookrelay(t)

	// Not migrated yet: the worker and the codec server refuse to start,
	// naming what to run; with migrations on, the run-time role may not run them.
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"worker --migrate=false", []string{"--endpoints-db", d.app, "--migrate=false", "--codec-key-file", codecKeyFile},
			[]string{"endpoint registry", "the schema is not created", `"starter migrate --db DSN"`}},
		{"worker, migrating as the run-time role", []string{"--endpoints-db", d.app, "--codec-key-file", codecKeyFile},
			[]string{"permission denied", `"starter migrate --db DSN"`, "--migrate=false"}},
		{"codec-server --migrate=false", []string{"codec-server", "--audit-db", d.app, "--migrate=false", "--codec-key-file", codecKeyFile,
			"--token-file", writeFile(t, "codec-token", "fake-codec-token-for-tests-0123456789abcdef\n"), "--listen", "127.0.0.1:0"},
			[]string{"audit trail", "the schema is not created", `"starter migrate --db DSN"`}},
	} {
		cmd := h.Command("worker", c.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		code, err := testenv.ExitCode(cmd.Run())
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if code == 0 || !strings.Contains(stderr.String(), w) {
				t.Errorf("%s: exit %d, want non-zero with %q in:\n%s", c.name, code, w, stderr.String())
			}
		}
		if strings.Contains(stderr.String(), "fake-app-") {
			t.Errorf("%s: the password is in the error:\n%s", c.name, stderr.String())
		}
	}

	out, errOut, code := starter(t, "", "migrate", "--db", d.owner, "--grant-to", d.appRole)
	if code != 0 {
		t.Fatalf("starter migrate: exit %d\n%s%s", code, out, errOut)
	}
	for _, w := range []string{"endpoint registry: schema current", "delivery log: schema current", "audit trail: schema current", "granted " + d.appRole} {
		if !strings.Contains(out, w) {
			t.Errorf("starter migrate printed no %q:\n%s", w, out)
		}
	}

	ctx := context.Background()
	useStoresAs(ctx, t, d.app)
	refusesDDL(ctx, t, d.app)

	// The CLI as the run-time role: the schema is current, so nothing to migrate.
	if out, errOut, code := starter(t, "", "endpoint", "list", "--account", "acct_roles", "--endpoints-db", d.app, "--codec-key-file", codecKeyFile, "--output", "json"); code != 0 || !strings.Contains(out, "https://127.0.0.1:8443/hook") {
		t.Errorf("starter endpoint list as the run-time role: exit %d\n%s%s", code, out, errOut)
	}
}

// useStoresAs runs the registry, delivery log and audit trail operations
// run-time processes make, connected as dsn's role, opened without migrating.
func useStoresAs(ctx context.Context, t *testing.T, dsn string) {
	t.Helper()
	keys, err := codec.Load(codecKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(ctx, dsn, registry.Options{Codec: keys, NoMigrate: true,
		Guard: netguard.New(netip.MustParsePrefix("127.0.0.0/8")).WithPortRule()})
	if err != nil {
		t.Fatalf("registry as the run-time role: %v", err)
	}
	defer reg.Close()
	url, events := "https://127.0.0.1:8443/hook", []string{"api_mail_log_delivered"}
	e, _, err := reg.Create(ctx, "acct_roles", registry.Fields{URL: &url, Events: &events})
	if err != nil {
		t.Fatalf("registry create as the run-time role: %v", err)
	}
	if _, err := reg.RotateSecret(ctx, "acct_roles", e.ID, time.Hour); err != nil {
		t.Errorf("registry rotate-secret as the run-time role: %v", err)
	}
	if routed, err := reg.Route(ctx, "acct_roles", events[0]); err != nil || len(routed) != 1 {
		t.Errorf("registry route as the run-time role: %d endpoints, %v", len(routed), err)
	}

	// A year ahead: opening creates that month's partitions through the
	// log's function, as the run-time role; pruning two years on drops them.
	later := time.Now().AddDate(1, 0, 0)
	l, err := deliverylog.Open(ctx, dsn, deliverylog.Options{Codec: keys, NoMigrate: true, Now: func() time.Time { return later }})
	if err != nil {
		t.Fatalf("delivery log as the run-time role: %v", err)
	}
	defer l.Close()
	del := deliverylog.Delivery{AccountID: "acct_roles", DeliveryID: e.ID + ":evt_roles", EndpointID: e.ID, EventID: "evt_roles",
		EventName: events[0], MailLogID: "5555550001", Status: "pending", CreatedAt: later}
	if err := l.UpsertDelivery(ctx, del); err != nil {
		t.Fatalf("delivery log upsert as the run-time role: %v", err)
	}
	if err := l.RecordAttempt(ctx, deliverylog.AttemptRecord{AccountID: del.AccountID, DeliveryID: del.DeliveryID, RunID: "run-1", Attempt: 1,
		Started: later, Duration: time.Second, StatusCode: 200, Outcome: "delivered", Response: []byte("ok"), Status: "delivered"}); err != nil {
		t.Fatalf("delivery log attempt as the run-time role: %v", err)
	}
	// Content retention blanks the excerpt in its partition (an UPDATE of
	// a partition the owner's function created); records retention drops it.
	p, err := l.Prune(ctx, later.AddDate(0, 0, 40), 365*24*time.Hour, 24*time.Hour)
	if err != nil || p.BlankedExcerpts != 1 {
		t.Errorf("delivery log content retention as the run-time role: %+v, %v", p, err)
	}
	p, err = l.Prune(ctx, later.AddDate(2, 0, 0), 365*24*time.Hour, 24*time.Hour)
	if err != nil || len(p.DroppedPartitions) == 0 {
		t.Errorf("delivery log records retention as the run-time role: %+v, %v", p, err)
	}

	trail, err := auditstore.Open(ctx, dsn, auditstore.Options{NoMigrate: true})
	if err != nil {
		t.Fatalf("audit trail as the run-time role: %v", err)
	}
	defer trail.Close()
	id, err := trail.Record(ctx, auditstore.Record{AccountID: "acct_roles", Credential: "key_roles", Action: "endpoint.create", Target: e.ID})
	if err != nil {
		t.Fatalf("audit record as the run-time role: %v", err)
	}
	if err := trail.Settle(ctx, id, true, e.ID); err != nil {
		t.Errorf("audit settle as the run-time role: %v", err)
	}
	if page, err := trail.List(ctx, auditstore.Query{AccountID: "acct_roles"}); err != nil || len(page.Records) != 1 {
		t.Errorf("audit list as the run-time role: %+v, %v", page, err)
	}
}

// refusesDDL checks dsn's role may change no table's definition.
func refusesDDL(ctx context.Context, t *testing.T, dsn string) {
	t.Helper()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var super, createRole, createDB bool
	if err := c.QueryRow(ctx, `SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user`).Scan(&super, &createRole, &createDB); err != nil {
		t.Fatal(err)
	}
	if super || createRole || createDB {
		t.Errorf("the run-time role: superuser %v, createrole %v, createdb %v; want none", super, createRole, createDB)
	}
	for _, stmt := range []string{
		`ALTER TABLE endpoints ADD COLUMN tampered TEXT`,
		`ALTER TABLE endpoints DISABLE ROW LEVEL SECURITY`,
		`DROP TABLE log_deliveries`,
		`DROP TABLE audit_records`,
		`TRUNCATE log_deliveries`,
		`CREATE TABLE planted (id INT)`,
		`CREATE TEMP TABLE planted (id INT)`,
		`CREATE SCHEMA planted`,
		`CREATE FUNCTION planted() RETURNS INT LANGUAGE sql AS 'SELECT 1'`,
		`UPDATE schema_migrations SET version = 1`,
		`DELETE FROM log_schema_migrations`,
	} {
		_, err := c.Exec(ctx, stmt)
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != "42501" {
			t.Errorf("%s as the run-time role: %v, want permission denied (42501)", stmt, err)
		}
	}
}
