package deploy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/codecserver"
	"github.com/hookrelay/hookrelay/internal/signing"
)

// make deploy-secrets writes every secret the compose file names, each in
// the form its reader accepts, readable by the containers' user, and keeps
// them on a second run.
func TestDeploySecretsScript(t *testing.T) {
	root := t.TempDir()
	script, err := os.ReadFile("../scripts/deploy-secrets.sh")
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(root, "scripts"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "scripts", "deploy-secrets.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		out, err := exec.Command("bash", filepath.Join(root, "scripts", "deploy-secrets.sh")).CombinedOutput()
		if err != nil {
			t.Fatalf("deploy-secrets.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	run()
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}

	// Every file secret of the compose file, and nothing else.
	p := stack(t)
	var want []string
	for _, s := range p.Secrets {
		rel, _ := filepath.Rel(p.WorkingDir, s.File)
		want = append(want, rel)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "secrets"))
	var got []string
	for _, e := range entries {
		if e.Name() == "pki" { // the CAs' keys: mounted nowhere (checked below)
			continue
		}
		got = append(got, filepath.Join("secrets", e.Name()))
		if info, _ := e.Info(); info.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644 (bind-mounted as is; the containers run as uid 65532)", e.Name(), info.Mode().Perm())
		}
	}
	if !sameSet(got, want) {
		t.Fatalf("the script writes %v, compose wants %v", got, want)
	}
	if info, _ := os.Stat(filepath.Join(root, "secrets")); info.Mode().Perm() != 0o700 {
		t.Errorf("secrets/: mode %v, want 0700", info.Mode().Perm())
	}
	if info, _ := os.Stat(filepath.Join(root, ".env")); info.Mode().Perm() != 0o600 {
		t.Errorf(".env: mode %v, want 0600", info.Mode().Perm())
	}

	if _, err := codec.Load(filepath.Join(root, "secrets", "codec.key")); err != nil {
		t.Errorf("codec.key: %v", err)
	}
	token, err := codecserver.ReadToken(filepath.Join(root, "secrets", "codec-token"))
	if err != nil {
		t.Errorf("codec-token: %v", err)
	}
	if api := strings.TrimSpace(read("secrets/api-token")); len(api) < 16 {
		t.Errorf("api-token is %d characters, serve wants at least 16", len(api))
	}
	if _, err := signing.ParseSecret(strings.TrimSpace(read("secrets/webhook-secret"))); err != nil {
		t.Errorf("webhook-secret: %v", err)
	}
	checkTemporalCertificates(t, filepath.Join(root, "secrets"))

	env := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(read(".env")), "\n") {
		k, v, _ := strings.Cut(l, "=")
		env[k] = v
	}
	if env["HOOKRELAY_CODEC_TOKEN"] != token || len(env["POSTGRES_PASSWORD"]) < 32 || len(env) != len(fakeEnv) {
		t.Errorf(".env holds %v; want POSTGRES_PASSWORD and the codec token", keys(env))
	}
	if _, err := loadCompose(t, env); err != nil {
		t.Errorf("the compose file with the generated .env: %v", err)
	}

	before := read("secrets/codec.key") + read(".env") + read("secrets/temporal-ca.pem") + read("secrets/hookrelay-temporal.pem")
	if out := run(); strings.Contains(out, "created") ||
		read("secrets/codec.key")+read(".env")+read("secrets/temporal-ca.pem")+read("secrets/hookrelay-temporal.pem") != before {
		t.Fatalf("a second run replaced secrets:\n%s", out)
	}
}

// The stack's endpoints are in hookrelay's own database in the stack's
// PostgreSQL: created with its two roles by the hookrelay-db job
// (deploy/postgres/roles.sh), migrated by hookrelay-migrate as the owner
// role, and named by worker and ingest, which start after it; ingest admits
// the customers network at registration, as the workers do.
func TestComposeEndpointRegistry(t *testing.T) {
	p := stack(t)
	job := p.Services["hookrelay-db"]
	if want := []string{"/bin/sh", "/etc/hookrelay/postgres/roles.sh"}; !slices.Equal(job.Entrypoint, want) {
		t.Errorf("hookrelay-db entrypoint %q, want %q", job.Entrypoint, want)
	}
	mounted := false
	for _, v := range job.Volumes {
		rel, _ := filepath.Rel(p.WorkingDir, v.Source)
		mounted = mounted || (rel == "deploy/postgres" && v.Target == "/etc/hookrelay/postgres" && v.ReadOnly)
	}
	if !mounted {
		t.Errorf("hookrelay-db does not mount deploy/postgres read-only at /etc/hookrelay/postgres")
	}
	for _, name := range []string{"worker", "ingest"} {
		s := p.Services[name]
		dsn := s.Environment["HOOKRELAY_ENDPOINTS_DB"]
		if dsn == nil || !strings.HasPrefix(*dsn, "postgres://hookrelay:") || !strings.HasSuffix(*dsn, "@postgresql:5432/hookrelay?sslmode=disable") {
			t.Errorf("%s: HOOKRELAY_ENDPOINTS_DB %v, want hookrelay's database on the postgresql service, as the run-time role", name, dsn)
		}
		if _, file := s.Environment["HOOKRELAY_ENDPOINTS"]; file {
			t.Errorf("%s: HOOKRELAY_ENDPOINTS set beside the registry", name)
		}
		if dep, ok := s.DependsOn["hookrelay-migrate"]; !ok || dep.Condition != "service_completed_successfully" {
			t.Errorf("%s does not start after hookrelay-migrate completes", name)
		}
	}
	cmd := []string(p.Services["ingest"].Command)
	i := slices.Index(cmd, "--allow-cidr")
	if i < 0 || i+1 >= len(cmd) || cmd[i+1] != p.Networks["customers"].Ipam.Config[0].Subnet {
		t.Errorf("ingest command %q: want --allow-cidr with the customers subnet", cmd)
	}
}

// No hookrelay service is given the superuser's connection string or the
// owner role's: each connects as the run-time role that hookrelay-migrate
// grants (--grant-to), checks the schema without migrating it
// (HOOKRELAY_MIGRATE=false), and only the migrate job connects as the owner.
// Both roles are made without superuser, role or database creation rights.
func TestComposeServicesUseTheRuntimeRole(t *testing.T) {
	p := stack(t)
	superuser := *p.Services["postgresql"].Environment["POSTGRES_USER"]
	migrate := p.Services["hookrelay-migrate"]
	if cmd := []string(migrate.Command); !slices.Equal(cmd, []string{"migrate", "--grant-to", "hookrelay"}) || migrate.Build == nil || migrate.Build.Target != "starter" {
		t.Errorf("hookrelay-migrate runs %q, want starter migrate --grant-to hookrelay", cmd)
	}
	if dsn := migrate.Environment["HOOKRELAY_MIGRATE_DB"]; dsn == nil || dsnUser(t, *dsn) != "hookrelay_owner" {
		t.Errorf("hookrelay-migrate: HOOKRELAY_MIGRATE_DB %v, want the owner role's", dsn)
	}
	dsns := 0
	for name, s := range p.Services {
		if s.Build == nil || name == "hookrelay-migrate" {
			continue
		}
		values := slices.Clone([]string(s.Command))
		for _, v := range s.Environment {
			if v != nil {
				values = append(values, *v)
			}
		}
		hasDSN := false
		for _, v := range values {
			if !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
				continue
			}
			hasDSN = true
			dsns++
			if user := dsnUser(t, v); user != "hookrelay" {
				t.Errorf("%s connects as %q (the superuser is %q), want the run-time role hookrelay", name, user, superuser)
			}
		}
		if m := s.Environment["HOOKRELAY_MIGRATE"]; hasDSN && (m == nil || *m != "false") {
			t.Errorf("%s: HOOKRELAY_MIGRATE %v, want false: the run-time role may not migrate", name, m)
		}
	}
	if dsns < 3 {
		t.Errorf("found %d database URLs on hookrelay's services, want the worker's, ingest's and the codec server's", dsns)
	}
	roles, err := os.ReadFile("../deploy/postgres/roles.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"owner", "app"} {
		want := "ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L', :'" + role + "'"
		if !strings.Contains(string(roles), want) {
			t.Errorf("roles.sql does not make the %s role without superuser, role and database rights (%s)", role, want)
		}
	}
}

func dsnUser(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		t.Errorf("%s: not a URL with a user", dsn)
		return ""
	}
	return u.User.Username()
}

// checkTemporalCertificates: the frontend's certificate verifies by
// temporal-ca as temporal-frontend (compose's TEMPORAL_ADDRESS host) and as
// 127.0.0.1 (its port on the host); the internode one as temporal-internode,
// for servers and clients; every client certificate by temporal-client-ca,
// for clients only and by no other CA; the CAs' keys are in secrets/pki/
// alone, which only the owner may enter.
func checkTemporalCertificates(t *testing.T, dir string) {
	t.Helper()
	load := func(name string) *x509.Certificate {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		if block == nil {
			t.Fatalf("%s.pem: no PEM", name)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("%s.pem: %v", name, err)
		}
		if _, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")); err != nil && !c.IsCA {
			t.Errorf("%s: %v", name, err)
		}
		return c
	}
	pool := func(name string) *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(load(name))
		return p
	}
	servers, clients := pool("temporal-ca"), pool("temporal-client-ca")
	verify := func(name, dnsName string, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
		_, err := load(name).Verify(x509.VerifyOptions{DNSName: dnsName, Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	for _, host := range []string{"temporal-frontend", "127.0.0.1"} {
		if err := verify("temporal-frontend", host, servers, x509.ExtKeyUsageServerAuth); err != nil {
			t.Errorf("temporal-frontend as %s: %v", host, err)
		}
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := verify("temporal-internode", "temporal-internode", servers, usage); err != nil {
			t.Errorf("temporal-internode (%v): %v", usage, err)
		}
	}
	for _, name := range []string{"hookrelay-temporal", "temporal-ui", "temporal-system-worker", "temporal-admin"} {
		if err := verify(name, "", clients, x509.ExtKeyUsageClientAuth); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if verify(name, "", servers, x509.ExtKeyUsageClientAuth) == nil {
			t.Errorf("%s verifies by temporal-ca: clients must be of the client CA alone", name)
		}
		if verify(name, "", clients, x509.ExtKeyUsageServerAuth) == nil {
			t.Errorf("%s may serve: want a client certificate only", name)
		}
	}
	for _, key := range []string{"temporal-ca-key.pem", "temporal-client-ca-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, "pki", key)); err != nil {
			t.Errorf("the CA key: %v", err)
		}
	}
	if info, err := os.Stat(filepath.Join(dir, "pki")); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("secrets/pki: %v, want mode 0700", err)
	}
}
