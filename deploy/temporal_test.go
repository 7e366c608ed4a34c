package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/hookrelay/hookrelay/internal/temporalcluster"
)

// The Temporal of the compose stack is what make test-cluster runs
// (internal/temporalcluster): the same server release, the four services
// each in a container of their own started by deploy/temporal/service.sh,
// the schema set up by deploy/temporal/schema.sh, both mounted with
// config.yaml and dynamicconfig.yaml from this repository, which
// temporalcluster reads by default.
const temporalMount = "/etc/temporal/hookrelay"

// temporalDir is deploy/temporal, the directory temporalcluster's
// Options.ConfigDir defaults to.
var temporalDir = filepath.Join("..", "deploy", "temporal")

func TestComposeTemporalIsWhatTestClusterRuns(t *testing.T) {
	p := stack(t)
	version := strings.TrimPrefix(temporalcluster.ServerVersion, "v")
	for _, f := range []string{"config.yaml", "dynamicconfig.yaml", "schema.sh", "service.sh"} {
		if _, err := os.Stat(filepath.Join(temporalDir, f)); err != nil {
			t.Errorf("deploy/temporal: %v", err)
		}
	}
	// mountsDeployTemporal checks s mounts deploy/temporal, read-only, where
	// its entrypoint looks.
	mountsDeployTemporal := func(name string, s types.ServiceConfig) {
		t.Helper()
		want := filepath.Join(p.WorkingDir, "deploy", "temporal")
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && v.Source == want && v.Target == temporalMount && v.ReadOnly {
				return
			}
		}
		t.Errorf("%s: does not mount %s read-only at %s: %+v", name, want, temporalMount, s.Volumes)
	}

	db := map[string]string{} // the database settings, the same in the job and in every service
	for _, svc := range temporalcluster.Services {
		name := "temporal-" + string(svc)
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("no service %s for Temporal's %s", name, svc)
			continue
		}
		if s.Image != "temporalio/server:"+version {
			t.Errorf("%s: image %q, want temporalio/server:%s (internal/temporalcluster.ServerVersion)", name, s.Image, version)
		}
		if want := []string{"/bin/sh", temporalMount + "/service.sh", string(svc)}; !slices.Equal(s.Entrypoint, want) {
			t.Errorf("%s: entrypoint %q, want %q", name, s.Entrypoint, want)
		}
		if len(s.Command) > 0 {
			t.Errorf("%s: command %q: service.sh takes only the service", name, s.Command)
		}
		mountsDeployTemporal(name, s)
		env := environment(s)
		if got := env["DYNAMIC_CONFIG_FILE_PATH"]; got != temporalMount+"/dynamicconfig.yaml" {
			t.Errorf("%s: DYNAMIC_CONFIG_FILE_PATH %q, want the mounted dynamicconfig.yaml", name, got)
		}
		// Every service records the cluster's address in its metadata; one
		// differing from the others would rewrite it at each start.
		if env["FRONTEND_HOST"] != "temporal-frontend" {
			t.Errorf("%s: FRONTEND_HOST %q, want temporal-frontend", name, env["FRONTEND_HOST"])
		}
		for _, k := range []string{"DB", "POSTGRES_SEEDS", "DB_PORT", "POSTGRES_USER", "POSTGRES_PWD", "DBNAME", "VISIBILITY_DBNAME", "NUM_HISTORY_SHARDS"} {
			if env[k] == "" {
				t.Errorf("%s: %s unset", name, k)
			}
			if prev, ok := db[k]; ok && prev != env[k] {
				t.Errorf("%s: %s=%q, another service has %q", name, k, env[k], prev)
			}
			db[k] = env[k]
		}
	}

	job := p.Services["temporal-schema"]
	if job.Image != "temporalio/admin-tools:"+version {
		t.Errorf("temporal-schema: image %q, want temporalio/admin-tools:%s", job.Image, version)
	}
	if want := []string{"/bin/sh", temporalMount + "/schema.sh", "setup"}; !slices.Equal(job.Entrypoint, want) {
		t.Errorf("temporal-schema: entrypoint %q, want %q", job.Entrypoint, want)
	}
	mountsDeployTemporal("temporal-schema", job)
	env := environment(job)
	for _, k := range []string{"DB", "POSTGRES_SEEDS", "DB_PORT", "POSTGRES_USER", "POSTGRES_PWD", "DBNAME", "VISIBILITY_DBNAME"} {
		if env[k] != db[k] {
			t.Errorf("temporal-schema: %s=%q, the servers have %q: the job must set up the databases they use", k, env[k], db[k])
		}
	}
	if env["SCHEMA_DIR"] != "/etc/temporal/schema" {
		t.Errorf("temporal-schema: SCHEMA_DIR %q, want the admin-tools image's /etc/temporal/schema", env["SCHEMA_DIR"])
	}

	// The frontend publishes gRPC on loopback only.
	fe := p.Services["temporal-frontend"]
	if len(fe.Ports) != 1 || fe.Ports[0].HostIP != "127.0.0.1" || fe.Ports[0].Target != 7233 {
		t.Errorf("temporal-frontend: ports %+v, want 127.0.0.1:…:7233 only", fe.Ports)
	}
	for _, name := range []string{"worker", "ingest", "temporal-ui"} {
		if got := environment(p.Services[name])["TEMPORAL_ADDRESS"]; got != "temporal-frontend:7233" {
			t.Errorf("%s: TEMPORAL_ADDRESS %q, want temporal-frontend:7233", name, got)
		}
	}
}

// The UI shows activity and timer summaries (user metadata): temporalio/ui
// has since v2.34.6 ("User Metadata for Activity and Timers", #2529), and
// pending activities' summaries since v2.37.3. It is pinned to the release
// the Temporal CLI v1.5.1 embeds beside server v1.29.1, so no newer than what
// the server was released with.
func TestComposeUIShowsSummaries(t *testing.T) {
	ui := stack(t).Services["temporal-ui"]
	repo, tag, _ := strings.Cut(ui.Image, ":")
	if repo != "temporalio/ui" {
		t.Fatalf("temporal-ui: image %q", ui.Image)
	}
	if v := semver(tag); v == nil || slices.Compare(v, []int{2, 37, 3}) < 0 || slices.Compare(v, []int{2, 42, 1}) > 0 {
		t.Fatalf("temporal-ui: tag %q, want 2.37.3 to 2.42.1", tag)
	}
}

func semver(tag string) []int {
	m := regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)$`).FindStringSubmatch(tag)
	if m == nil {
		return nil
	}
	var out []int
	for _, p := range m[1:] {
		n, _ := strconv.Atoi(p) // digits only
		out = append(out, n)
	}
	return out
}

// environment is a service's variables, unset ones as "".
func environment(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// temporalFileEnv is every variable the files of deploy/temporal read:
// `env "X"` in config.yaml's template, ${X} and $X in the scripts.
func temporalFileEnv(t *testing.T, files ...string) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(temporalDir, f))
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`\$\{?([A-Z][A-Z0-9_]*)`)
		if strings.HasSuffix(f, ".yaml") {
			re = regexp.MustCompile(`env "([A-Z][A-Z0-9_]*)"`)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			seen[m[1]] = true
		}
	}
	return keys(seen)
}

// schema.sh runs exactly the documented steps for both databases, with the
// password in the environment only; a second setup is the same steps (each
// one is safe to repeat). Run with a stand-in temporal-sql-tool that
// records its arguments.
func TestSchemaScriptSteps(t *testing.T) {
	dir := t.TempDir()
	argsLog := filepath.Join(dir, "calls")
	fake := filepath.Join(dir, "temporal-sql-tool")
	script := "#!/bin/sh\necho \"$* | SQL_PASSWORD=$SQL_PASSWORD\" >> " + argsLog + "\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(action ...string) (string, error) {
		cmd := exec.Command("/bin/sh", append([]string{filepath.Join(temporalDir, "schema.sh")}, action...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SQL_TOOL=" + fake, "SCHEMA_DIR=/schema", "POSTGRES_SEEDS=db.internal",
			"DB_PORT=6543", "POSTGRES_USER=temporal", "POSTGRES_PWD=fake-password", "DBNAME=t1", "VISIBILITY_DBNAME=v1"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	conn := "--plugin postgres12 --ep db.internal -p 6543 -u temporal"
	want := []string{
		conn + " --db t1 create-database --defaultdb postgres",
		conn + " --db t1 setup-schema -v 0.0",
		conn + " --db t1 update-schema -d /schema/postgresql/v12/temporal/versioned",
		conn + " --db v1 create-database --defaultdb postgres",
		conn + " --db v1 setup-schema -v 0.0",
		conn + " --db v1 update-schema -d /schema/postgresql/v12/visibility/versioned",
	}
	calls := func() []string {
		b, _ := os.ReadFile(argsLog)
		os.Remove(argsLog)
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			args, env, _ := strings.Cut(l, " | ")
			if env != "SQL_PASSWORD=fake-password" {
				t.Errorf("temporal-sql-tool ran with %q, want the password in SQL_PASSWORD", env)
			}
			if strings.Contains(args, "fake-password") {
				t.Errorf("the password is on temporal-sql-tool's command line: %s", args)
			}
			out = append(out, args)
		}
		return out
	}
	for range 2 {
		if out, err := run("setup"); err != nil {
			t.Fatalf("schema.sh setup: %v\n%s", err, out)
		}
		if got := calls(); !slices.Equal(got, want) {
			t.Fatalf("schema.sh setup ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if out, err := run("drop"); err != nil {
		t.Fatalf("schema.sh drop: %v\n%s", err, out)
	}
	if got, want := calls(), []string{conn + " --db t1 drop-database --defaultdb postgres --force", conn + " --db v1 drop-database --defaultdb postgres --force"}; !slices.Equal(got, want) {
		t.Fatalf("schema.sh drop ran %q, want %q", got, want)
	}
	// compose's hookrelay-db job: one more database, empty, on the same server.
	if out, err := run("create-db", "hookrelay"); err != nil {
		t.Fatalf("schema.sh create-db: %v\n%s", err, out)
	}
	if got, want := calls(), []string{conn + " --db hookrelay create-database --defaultdb postgres"}; !slices.Equal(got, want) {
		t.Fatalf("schema.sh create-db ran %q, want %q", got, want)
	}
	if out, err := run("create-db"); err == nil || !strings.Contains(out, "usage") {
		t.Fatalf("schema.sh create-db without a name: %v, %q; want a usage error", err, out)
	}
	if out, err := run("migrate"); err == nil || !strings.Contains(out, "usage") {
		t.Fatalf("schema.sh migrate: %v, %q; want a usage error", err, out)
	}
}

// service.sh starts the server binary with the config beside it, for the
// service named; in a container (nothing set) it binds every interface
// and broadcasts the container's own address.
func TestServiceScript(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "temporal-server")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"$*\"\necho \"bind=$BIND_ON_IP broadcast=$TEMPORAL_BROADCAST_ADDRESS\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(temporalDir)
	if err != nil {
		t.Fatal(err)
	}
	run := func(service string, env ...string) (string, error) {
		cmd := exec.Command("/bin/sh", filepath.Join(temporalDir, "service.sh"), service)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "TEMPORAL_SERVER=" + fake}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("history", "BIND_ON_IP=127.0.0.1", "TEMPORAL_BROADCAST_ADDRESS=127.0.0.1")
	want := "--config-file " + filepath.Join(abs, "config.yaml") + " start --service history\nbind=127.0.0.1 broadcast=127.0.0.1\n"
	if err != nil || out != want {
		t.Fatalf("service.sh history: %v\n%q\nwant\n%q", err, out, want)
	}
	out, err = run("frontend")
	if err != nil || !regexp.MustCompile(`\nbind=0\.0\.0\.0 broadcast=[0-9a-f.:]+\n$`).MatchString(out) {
		t.Fatalf("service.sh frontend with nothing set: %v\n%s", err, out)
	}
	if out, err := run("history-and-matching"); err == nil || !strings.Contains(out, "usage") {
		t.Fatalf("service.sh with an unknown service: %v, %q; want a usage error", err, out)
	}
}

// The health checks of the images hookrelay does not build run only what
// any alpine image holds: busybox's wget, asking an HTTP URL on loopback.
// The temporalio/server image is alpine and the server binary (no curl, no
// temporal CLI). Each Temporal service's check asks its metrics, what
// internal/temporalcluster's TestEachProcessHasItsOwnPorts gets from the
// processes make test-cluster runs, with this configuration. The
// frontend's HTTP API is not asked: it admits only clients with a
// certificate (TestComposeTemporalFrontendWantsClientCertificates).
func TestComposeThirdPartyHealthChecksNeedOnlyBusybox(t *testing.T) {
	p := stack(t)
	want := map[string]string{
		"temporal-frontend": "http://127.0.0.1:9090/metrics",
		"temporal-history":  "http://127.0.0.1:9090/metrics",
		"temporal-matching": "http://127.0.0.1:9090/metrics",
		"temporal-worker":   "http://127.0.0.1:9090/metrics",
		"temporal-ui":       "http://127.0.0.1:8080/",
	}
	for name, url := range want {
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		if s.HealthCheck == nil {
			t.Errorf("%s: no health check", name)
			continue
		}
		if got, w := s.HealthCheck.Test, []string{"CMD", "wget", "-q", "-O", "/dev/null", url}; !slices.Equal(got, w) {
			t.Errorf("%s: health check %q, want %q", name, got, w)
		}
	}
	for name, s := range p.Services {
		if s.HealthCheck == nil || s.Build != nil || name == "postgresql" {
			continue
		}
		if _, ok := want[name]; !ok {
			t.Errorf("%s: a health check this test does not know: %q", name, s.HealthCheck.Test)
		}
	}
}

// Mutual TLS in the stack, as make test-cluster runs it: every Temporal
// service mounts the files config.yaml's global.tls names by default; the
// hookrelay services and the UI reach the frontend with a client
// certificate, verifying it by temporal-ca; the namespace job does too; and
// nothing runs the server with --allow-no-auth.
func TestComposeTemporalFrontendWantsClientCertificates(t *testing.T) {
	p := stack(t)
	config, err := os.ReadFile(filepath.Join(temporalDir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The defaults of config.yaml's TLS files: /run/secrets/<secret>.
	defaults := regexp.MustCompile(`default "/run/secrets/([a-z-]+)"`).FindAllStringSubmatch(string(config), -1)
	if len(defaults) < 8 {
		t.Fatalf("config.yaml names %d TLS files by default, want 8", len(defaults))
	}
	if !strings.Contains(string(config), "requireClientAuth: true") || !strings.Contains(string(config), "authorizer: default") {
		t.Error("config.yaml: want requireClientAuth and the default authorizer")
	}
	for _, svc := range temporalcluster.Services {
		name := "temporal-" + string(svc)
		mounted := secretsOf(p.Services[name])
		for _, d := range defaults {
			if !mounted[d[1]] {
				t.Errorf("%s: config.yaml reads /run/secrets/%s, which it does not mount", name, d[1])
			}
		}
	}
	clients := map[string][3]string{ // service: certificate, key and CA variables
		"worker":      {"TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA"},
		"ingest":      {"TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA"},
		"temporal-ui": {"TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA"},
	}
	for name, vars := range clients {
		env := environment(p.Services[name])
		for _, v := range vars {
			if !strings.HasPrefix(env[v], "/run/secrets/") {
				t.Errorf("%s: %s=%q, want a mounted secret", name, v, env[v])
			}
		}
		if env["TEMPORAL_TLS_CA"] != "/run/secrets/temporal-ca" {
			t.Errorf("%s: TEMPORAL_TLS_CA %q, want temporal-ca", name, env["TEMPORAL_TLS_CA"])
		}
	}
	job := strings.Join(p.Services["temporal-namespace"].Entrypoint, " ")
	for _, flag := range []string{"--tls-cert-path /run/secrets/temporal-admin-cert", "--tls-key-path /run/secrets/temporal-admin-key", "--tls-ca-path /run/secrets/temporal-ca"} {
		if !strings.Contains(job, flag) {
			t.Errorf("temporal-namespace: no %s in %q", flag, job)
		}
	}
	for _, f := range []string{"service.sh", "config.yaml"} {
		b, _ := os.ReadFile(filepath.Join(temporalDir, f))
		if strings.Contains(string(b), "--allow-no-auth") {
			t.Errorf("deploy/temporal/%s passes --allow-no-auth", f)
		}
	}
}

// secretsOf is the set of secrets s mounts, by source.
func secretsOf(s types.ServiceConfig) map[string]bool {
	out := map[string]bool{}
	for _, sec := range s.Secrets {
		out[sec.Source] = true
	}
	return out
}
