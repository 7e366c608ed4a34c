package deploy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// fakeEnv stands for .env (written by make deploy-secrets): recognisable
// values, so the tests can see where each lands.
var fakeEnv = map[string]string{
	"POSTGRES_PASSWORD":           "fake-postgres-password-for-tests",
	"HOOKRELAY_DB_OWNER_PASSWORD": "fake-db-owner-password-for-tests",
	"HOOKRELAY_DB_PASSWORD":       "fake-db-runtime-password-for-tests",
	"HOOKRELAY_CODEC_TOKEN":       "fake-codec-token-for-tests-0123456789",
}

// ssoEnv stands for the UI's sign-in settings an operator adds to .env
// (docs/deployment.md): the identity provider's, so never generated.
var ssoEnv = map[string]string{
	"HOOKRELAY_OIDC_ISSUER":          "https://sso.example.com/realms/ops",
	"HOOKRELAY_OIDC_AUDIENCE":        "hookrelay-codec",
	"HOOKRELAY_OIDC_REQUIRED_CLAIM":  "groups=hookrelay-codec",
	"TEMPORAL_UI_OIDC_CLIENT_ID":     "temporal-ui",
	"TEMPORAL_UI_OIDC_CLIENT_SECRET": "fake-oidc-client-secret-for-tests",
}

// devUIFile is the dev-only override: the UI without sign-in.
const devUIFile = "docker-compose.dev-ui.yml"

// The services of the stack, and for hookrelay's own the main package their
// image's entrypoint is built from (the Dockerfile target's binary).
var (
	wantServices = []string{"postgresql", "temporal-schema", "temporal-frontend", "temporal-history", "temporal-matching", "temporal-worker",
		"temporal-namespace", "hookrelay-db", "hookrelay-migrate", "temporal-ui", "worker", "codec-server", "ingest", "receiver"}
	// oneShot are jobs that run to completion: no health check, no restart,
	// and what needs them waits until they completed successfully.
	oneShot      = []string{"temporal-schema", "temporal-namespace", "hookrelay-db", "hookrelay-migrate"}
	mainPackages = map[string]string{"worker": "./worker", "starter": "./starter", "receiver": "./examples/receiver"}
)

func loadCompose(t *testing.T, env map[string]string, files ...string) (*types.Project, error) {
	t.Helper()
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	paths := []string{"../docker-compose.yml"}
	for _, f := range files {
		paths = append(paths, "../"+f)
	}
	opts, err := cli.NewProjectOptions(paths, cli.WithWorkingDirectory(".."), cli.WithEnv(kv))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

var (
	projectOnce sync.Once
	project     *types.Project
	projectErr  error
)

// stack is the compose file as `docker compose up` sees it with .env
// present, the sign-in settings added.
func stack(t *testing.T) *types.Project {
	t.Helper()
	projectOnce.Do(func() { project, projectErr = loadCompose(t, withSSO(fakeEnv)) })
	if projectErr != nil {
		t.Fatalf("load docker-compose.yml: %v", projectErr)
	}
	return project
}

func withSSO(env map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range []map[string]string{env, ssoEnv} {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestComposeServices(t *testing.T) {
	p := stack(t)
	if got := p.ServiceNames(); !sameSet(got, wantServices) {
		t.Fatalf("services %v, want %v", got, wantServices)
	}
	if p.Name != "hookrelay" {
		t.Errorf("project name %q", p.Name)
	}
	// Each of hookrelay's services runs the binary it is meant to.
	for name, want := range map[string][]string{
		"worker":       {"worker", ""},
		"codec-server": {"worker", "codec-server"},
		"ingest":       {"starter", "serve"},
		"receiver":     {"receiver", ""},
	} {
		s := p.Services[name]
		if s.Build == nil || s.Build.Target != want[0] {
			t.Errorf("%s: built from %+v, want target %s", name, s.Build, want[0])
		}
		if sub := subcommand(s); sub != want[1] {
			t.Errorf("%s: runs %q, want %q", name, sub, want[1])
		}
	}
}

// The workers scale: three replicas by default, nothing that pins one container.
func TestComposeWorkerReplicas(t *testing.T) {
	w := stack(t).Services["worker"]
	if w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas != 3 {
		t.Fatalf("worker deploy: %+v, want replicas: 3", w.Deploy)
	}
	if w.ContainerName != "" || len(w.Ports) > 0 || w.Scale != nil {
		t.Fatalf("worker has a container_name, published ports or scale, which break --scale worker=N")
	}
	// Long enough for the worker's --shutdown-timeout (30s) to let attempts finish.
	if w.StopGracePeriod == nil || *w.StopGracePeriod <= types.Duration(30e9) {
		t.Fatalf("worker stop_grace_period %v, want more than 30s", w.StopGracePeriod)
	}
}

var pinned = regexp.MustCompile(`^[a-z0-9./_-]+:[A-Za-z0-9._-]+(@sha256:[0-9a-f]{64})?$|^[a-z0-9./_-]+@sha256:[0-9a-f]{64}$`)

func TestComposeImagesArePinned(t *testing.T) {
	for name, s := range stack(t).Services {
		_, tag, _ := strings.Cut(s.Image[strings.LastIndex(s.Image, "/")+1:], ":")
		tag, _, _ = strings.Cut(tag, "@")
		if !pinned.MatchString(s.Image) || tag == "latest" {
			t.Errorf("%s: image %q is not pinned by a tag other than latest (or a digest)", name, s.Image)
		}
	}
}

// Every service has a health check, or is a one-shot job, and starts only
// after what it needs is healthy (or, for a job, completed), so a plain
// `docker compose up` converges.
func TestComposeHealthChecksAndStartOrder(t *testing.T) {
	p := stack(t)
	for name, s := range p.Services {
		if slices.Contains(oneShot, name) {
			if (s.HealthCheck != nil && !s.HealthCheck.Disable) || s.Restart != types.RestartPolicyNo {
				t.Errorf("%s: a one-shot job with a health check or restart %q", name, s.Restart)
			}
			continue
		}
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
			t.Errorf("%s: no health check", name)
			continue
		}
		if s.Build != nil {
			// hookrelay's images have no shell: exec form, with the probe they carry.
			if hc.Test[0] != "CMD" || hc.Test[1] != "/usr/local/bin/healthcheck" || !strings.HasPrefix(hc.Test[len(hc.Test)-1], "http://127.0.0.1:") {
				t.Errorf("%s: health check %q, want [CMD /usr/local/bin/healthcheck http://127.0.0.1:PORT/...]", name, hc.Test)
			}
		}
		if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
			t.Errorf("%s: health check without interval, timeout or retries", name)
		}
		for dep, d := range s.DependsOn {
			if _, ok := p.Services[dep]; !ok {
				t.Errorf("%s depends on unknown %s", name, dep)
			}
			switch {
			case slices.Contains(oneShot, dep) && d.Condition == types.ServiceConditionCompletedSuccessfully:
			case !slices.Contains(oneShot, dep) && (d.Condition == types.ServiceConditionHealthy || d.Condition == types.ServiceConditionStarted):
			default:
				t.Errorf("%s: depends on %s with condition %q", name, dep, d.Condition)
			}
		}
	}
	healthy, done := types.ServiceConditionHealthy, types.ServiceConditionCompletedSuccessfully
	for svc, deps := range map[string]map[string]string{
		// The schema before any Temporal service, the frontend before the
		// others (the first to start writes the cluster metadata), the
		// namespace once all four run, and hookrelay once it exists.
		"temporal-schema":    {"postgresql": healthy},
		"temporal-frontend":  {"temporal-schema": done},
		"temporal-history":   {"temporal-frontend": healthy},
		"temporal-matching":  {"temporal-frontend": healthy},
		"temporal-worker":    {"temporal-frontend": healthy},
		"temporal-namespace": {"temporal-frontend": healthy, "temporal-history": healthy, "temporal-matching": healthy, "temporal-worker": healthy},
		"temporal-ui":        {"temporal-frontend": healthy, "codec-server": healthy},
		"hookrelay-db":       {"postgresql": healthy},
		"hookrelay-migrate":  {"hookrelay-db": done},
		"worker":             {"temporal-namespace": done, "hookrelay-migrate": done},
		"ingest":             {"temporal-namespace": done, "hookrelay-migrate": done, "worker": types.ServiceConditionStarted},
		// The codec server records every decode in the audit trail, in
		// hookrelay's database: its schema first.
		"codec-server": {"hookrelay-migrate": done},
		"receiver":     {},
		"postgresql":   {},
	} {
		got := map[string]string{}
		for dep, d := range p.Services[svc].DependsOn {
			got[dep] = d.Condition
		}
		if !maps(got, deps) {
			t.Errorf("%s depends on %v, want %v", svc, got, deps)
		}
	}
	if order, err := startOrder(p); err != nil {
		t.Error(err)
	} else {
		t.Logf("start order: %v", order)
	}
}

// startOrder fails on a dependency cycle, which would keep `up` from converging.
func startOrder(p *types.Project) ([]string, error) {
	var order []string
	done := map[string]bool{}
	for len(order) < len(p.Services) {
		progressed := false
		for _, name := range p.ServiceNames() {
			if done[name] {
				continue
			}
			ready := true
			for dep := range p.Services[name].DependsOn {
				ready = ready && done[dep]
			}
			if ready {
				done[name], progressed = true, true
				order = append(order, name)
			}
		}
		if !progressed {
			return nil, errorf("depends_on has a cycle among the services not in %v", order)
		}
	}
	return order, nil
}

// No secret is written in the compose file: secrets come from git-ignored
// files or from .env through ${...}, and land only where they are meant to.
func TestComposeHasNoInlineSecrets(t *testing.T) {
	p := stack(t)
	gitignore, err := os.ReadFile("../.gitignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"/secrets/", "/.env"} {
		if !slices.Contains(strings.Split(string(gitignore), "\n"), line) {
			t.Errorf(".gitignore lacks %s", line)
		}
	}
	if len(p.Secrets) == 0 {
		t.Fatal("no compose secrets")
	}
	for name, s := range p.Secrets {
		rel, err := filepath.Rel(filepath.Join(p.WorkingDir, "secrets"), s.File)
		if s.File == "" || s.Content != "" || s.Environment != "" || err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("secret %s: file %q, content or environment set: want a file in secrets/", name, s.File)
		}
	}
	for name, s := range p.Services {
		for _, sec := range s.Secrets {
			if _, ok := p.Secrets[sec.Source]; !ok {
				t.Errorf("%s uses undeclared secret %s", name, sec.Source)
			}
		}
		// A *_FILE variable or flag pointing at /run/secrets/X needs the secret X.
		mounted := map[string]bool{}
		for _, sec := range s.Secrets {
			switch {
			case sec.Target == "":
				mounted["/run/secrets/"+sec.Source] = true
			case strings.HasPrefix(sec.Target, "/"):
				mounted[sec.Target] = true
			default:
				mounted["/run/secrets/"+sec.Target] = true
			}
		}
		refs := slices.Clone([]string(s.Command))
		for _, v := range s.Environment {
			if v != nil {
				refs = append(refs, *v)
			}
		}
		for _, r := range refs {
			if strings.HasPrefix(r, "/run/secrets/") && !mounted[r] {
				t.Errorf("%s refers to %s but does not mount that secret", name, r)
			}
		}
	}
	// The fake .env values appear exactly where they belong: the codec token
	// nowhere but its file (the UI signs in; only the dev-only variant puts
	// it in the UI's codec endpoint).
	want := map[string][]string{
		"POSTGRES_PASSWORD": {"postgresql POSTGRES_PASSWORD", "temporal-schema POSTGRES_PWD", "temporal-frontend POSTGRES_PWD",
			"temporal-history POSTGRES_PWD", "temporal-matching POSTGRES_PWD", "temporal-worker POSTGRES_PWD",
			"hookrelay-db PGPASSWORD"},
		// Only the migrate job connects as the owner; every service as the run-time role.
		"HOOKRELAY_DB_OWNER_PASSWORD": {"hookrelay-db HOOKRELAY_DB_OWNER_PASSWORD", "hookrelay-migrate HOOKRELAY_MIGRATE_DB"},
		"HOOKRELAY_DB_PASSWORD": {"hookrelay-db HOOKRELAY_DB_PASSWORD", "worker HOOKRELAY_ENDPOINTS_DB", "ingest HOOKRELAY_ENDPOINTS_DB",
			"codec-server HOOKRELAY_AUDIT_DB"},
		"HOOKRELAY_CODEC_TOKEN":          nil,
		"TEMPORAL_UI_OIDC_CLIENT_SECRET": {"temporal-ui TEMPORAL_AUTH_CLIENT_SECRET"},
	}
	for envName := range want {
		value := withSSO(fakeEnv)[envName]
		var at []string
		for name, s := range p.Services {
			for k, v := range s.Environment {
				if v != nil && strings.Contains(*v, value) {
					at = append(at, name+" "+k)
				}
			}
			for _, arg := range append(slices.Clone([]string(s.Command)), s.Entrypoint...) {
				if strings.Contains(arg, value) {
					at = append(at, name+" command")
				}
			}
		}
		if !sameSet(at, want[envName]) {
			t.Errorf("%s lands in %v, want %v", envName, at, want[envName])
		}
	}

	// As written, before interpolation: every variable whose name says it
	// holds a secret is a ${...} reference or a path to a mounted secret file.
	text, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Services map[string]struct {
			Environment map[string]any `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(text, &raw); err != nil {
		t.Fatal(err)
	}
	secretName := regexp.MustCompile(`PASSWORD|PWD|TOKEN|SECRET|API_KEY|CREDENTIAL|PRIVATE`)
	reference := regexp.MustCompile(`^\$\{[A-Z_]+(:\?[^}]*|:-)?\}$`) // ${X}, ${X:?why} or ${X:-} (empty by default)
	for name, s := range raw.Services {
		if len(s.Environment) == 0 && len(p.Services[name].Environment) > 0 {
			t.Errorf("%s: environment not written as a mapping", name)
		}
		for k, value := range s.Environment {
			v := fmt.Sprint(value)
			if !secretName.MatchString(k) {
				continue
			}
			switch {
			case strings.HasSuffix(k, "_FILE") && strings.HasPrefix(v, "/run/secrets/"):
			case v == "true" || v == "false": // a switch about a secret (TEMPORAL_CODEC_PASS_ACCESS_TOKEN)
			case reference.MatchString(v):
			case k == "TEMPORAL_CODEC_ENDPOINT" && reference.MatchString(v[strings.LastIndex(v, "/")+1:]):
			default:
				t.Errorf("%s: %s=%q holds a secret inline", name, k, v)
			}
		}
	}
	// And nothing in the file looks like key material.
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`whsec_[A-Za-z0-9+/=]{8,}`),
		regexp.MustCompile(`-----BEGIN`),
	} {
		if m := bad.Find(text); m != nil {
			t.Errorf("docker-compose.yml holds %q, which looks like a secret", m)
		}
	}
	// A long run of mixed-case letters and digits: a token or a key.
	mixed := []*regexp.Regexp{regexp.MustCompile(`[a-z]`), regexp.MustCompile(`[A-Z]`), regexp.MustCompile(`[0-9]`)}
	for _, m := range regexp.MustCompile(`[A-Za-z0-9+/_-]{24,}`).FindAll(text, -1) {
		if mixed[0].Match(m) && mixed[1].Match(m) && mixed[2].Match(m) {
			t.Errorf("docker-compose.yml holds %q, which looks like a secret", m)
		}
	}
}

// Without .env, compose refuses to start and says what to run.
func TestComposeNeedsTheGeneratedEnv(t *testing.T) {
	_, err := loadCompose(t, nil)
	if err == nil || !strings.Contains(err.Error(), "make deploy-secrets") {
		t.Fatalf("loading without .env: %v, want an error saying to run make deploy-secrets", err)
	}
}

// Every variable the compose file sets on hookrelay's services is one the
// service's binary reads, as derived from the source (envReads).
func TestComposeEnvironmentIsReadByTheBinaries(t *testing.T) {
	p := stack(t)
	reads := map[string]map[string]bool{}
	for target, pkg := range mainPackages {
		names, _ := envReads(t, pkg)
		reads[target] = names
	}
	for name, s := range p.Services {
		if s.Build == nil {
			continue
		}
		target := s.Build.Target
		if reads[target] == nil {
			t.Errorf("%s: target %q builds no binary this test knows", name, target)
			continue
		}
		for k := range s.Environment {
			if reads[target][k] {
				continue
			}
			t.Errorf("%s sets %s, which the %s binary does not read (it reads %v)", name, k, target, keys(reads[target]))
		}
	}
}

// The flags in each hookrelay service's command are flags of its binary.
func TestComposeCommandsUseRealFlags(t *testing.T) {
	for name, s := range stack(t).Services {
		if s.Build == nil {
			continue
		}
		sub := subcommand(s)
		for _, arg := range s.Command {
			if !strings.HasPrefix(arg, "--") {
				continue
			}
			flag, _, _ := strings.Cut(arg, "=")
			if !hasFlag(t, s.Build.Target, sub, flag) {
				t.Errorf("%s: %s is not a flag of %s %s", name, flag, s.Build.Target, sub)
			}
		}
	}
}

// Variables set on the images hookrelay does not build are checked against
// the names those images document, loosely: a misspelt name is caught, the
// values are not. Sources: the postgres image's documentation;
// temporalio/ui server/config/docker.yaml (v2.42.1). The Temporal server and
// admin-tools images run this repository's deploy/temporal files instead of
// their own templates, so their names are those the files read
// (temporalFileEnv).
var imageEnv = map[string][]string{
	"postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_INITDB_ARGS", "POSTGRES_INITDB_WALDIR",
		"POSTGRES_HOST_AUTH_METHOD", "PGDATA", "POSTGRES_USER_FILE", "POSTGRES_PASSWORD_FILE", "POSTGRES_DB_FILE",
		// libpq's, for the image's psql (the hookrelay-db job)
		"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"},
	"temporalio/ui": {"TEMPORAL_ADDRESS", "TEMPORAL_UI_PORT", "TEMPORAL_UI_PUBLIC_PATH", "TEMPORAL_CORS_ORIGINS",
		"TEMPORAL_CSRF_COOKIE_INSECURE", "TEMPORAL_CODEC_ENDPOINT", "TEMPORAL_CODEC_PASS_ACCESS_TOKEN",
		"TEMPORAL_CODEC_INCLUDE_CREDENTIALS", "TEMPORAL_DEFAULT_NAMESPACE", "TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT",
		"TEMPORAL_TLS_KEY", "TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_TLS_ENABLE_HOST_VERIFICATION", "TEMPORAL_AUTH_ENABLED",
		"TEMPORAL_AUTH_PROVIDER_URL", "TEMPORAL_AUTH_ISSUER_URL", "TEMPORAL_AUTH_CLIENT_ID", "TEMPORAL_AUTH_CLIENT_SECRET",
		"TEMPORAL_AUTH_CALLBACK_URL", "TEMPORAL_AUTH_SCOPES",
		"TEMPORAL_DISABLE_WRITE_ACTIONS", "TEMPORAL_BANNER_TEXT"},
}

func TestComposeThirdPartyEnvironmentNames(t *testing.T) {
	documented := map[string][]string{
		"temporalio/server":      temporalFileEnv(t, "config.yaml", "service.sh"),
		"temporalio/admin-tools": temporalFileEnv(t, "schema.sh"),
	}
	for repo, names := range imageEnv {
		documented[repo] = names
	}
	// The postgres image also runs deploy/postgres/roles.sh: what it reads.
	script, err := os.ReadFile("../deploy/postgres/roles.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{?([A-Z][A-Z0-9_]*)`).FindAllStringSubmatch(string(script), -1) {
		documented["postgres"] = append(slices.Clone(documented["postgres"]), m[1])
	}
	for name, s := range stack(t).Services {
		if s.Build != nil {
			continue
		}
		repo, _, _ := strings.Cut(s.Image, ":")
		known, ok := documented[repo]
		if !ok {
			t.Errorf("%s: image %s has no list of documented variables here", name, repo)
			continue
		}
		for k := range s.Environment {
			if !slices.Contains(known, k) {
				t.Errorf("%s sets %s, which %s does not document", name, k, repo)
			}
		}
	}
}

// The workers admit exactly the customers network through the guard: the
// receiver is reachable, Temporal, PostgreSQL and the codec server are not.
func TestComposeNetworkGuardAdmitsOnlyTheCustomersNetwork(t *testing.T) {
	p := stack(t)
	subnets := p.Networks["customers"].Ipam.Config
	if len(subnets) != 1 {
		t.Fatalf("customers network subnets: %+v", subnets)
	}
	w := p.Services["worker"]
	var allowed []string
	for i, arg := range w.Command {
		if arg == "--allow-cidr" && i+1 < len(w.Command) {
			allowed = append(allowed, w.Command[i+1])
		}
	}
	if !slices.Equal(allowed, []string{subnets[0].Subnet}) {
		t.Fatalf("worker --allow-cidr %v, want only the customers subnet %s", allowed, subnets[0].Subnet)
	}
	for name, s := range p.Services {
		_, onCustomers := s.Networks["customers"]
		if onCustomers != (name == "worker" || name == "receiver") {
			t.Errorf("%s on the customers network: %t", name, onCustomers)
		}
	}
}

// The workers' metrics (every endpoint's id and outcomes) listen on
// loopback, not on the customers network the guard admits; the health check
// reaches them there.
func TestComposeMetricsOffTheCustomersNetwork(t *testing.T) {
	w := stack(t).Services["worker"]
	listen := w.Environment["HOOKRELAY_METRICS_LISTEN"]
	if listen == nil {
		t.Fatal("worker: HOOKRELAY_METRICS_LISTEN unset")
	}
	host, port, err := net.SplitHostPort(*listen)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("worker metrics listen on %q, want 127.0.0.1:PORT", *listen)
	}
	if probe := w.HealthCheck.Test[len(w.HealthCheck.Test)-1]; !strings.HasPrefix(probe, "http://127.0.0.1:"+port+"/") {
		t.Errorf("worker health check %q does not reach the metrics listener on port %s", probe, port)
	}
}

// The UI signs its users in through the operator's OIDC provider and passes
// their access tokens to the codec server, which checks them against the
// same issuer: no token in any URL, no --accept-path-token.
func TestComposeUISignsInThroughOIDC(t *testing.T) {
	p := stack(t)
	ui, codec := p.Services["temporal-ui"].Environment, p.Services["codec-server"]
	get := func(env types.MappingWithEquals, k string) string {
		if v := env[k]; v != nil {
			return *v
		}
		return ""
	}
	for k, want := range map[string]string{
		"TEMPORAL_AUTH_ENABLED":            "true",
		"TEMPORAL_CODEC_PASS_ACCESS_TOKEN": "true",
		"TEMPORAL_AUTH_PROVIDER_URL":       ssoEnv["HOOKRELAY_OIDC_ISSUER"],
		"TEMPORAL_AUTH_CLIENT_ID":          ssoEnv["TEMPORAL_UI_OIDC_CLIENT_ID"],
		"TEMPORAL_CODEC_ENDPOINT":          "http://127.0.0.1:8081",
	} {
		if got := get(ui, k); got != want {
			t.Errorf("temporal-ui %s = %q, want %q", k, got, want)
		}
	}
	if get(codec.Environment, "HOOKRELAY_OIDC_ISSUER") != ssoEnv["HOOKRELAY_OIDC_ISSUER"] ||
		get(codec.Environment, "HOOKRELAY_OIDC_AUDIENCE") != ssoEnv["HOOKRELAY_OIDC_AUDIENCE"] ||
		get(codec.Environment, "HOOKRELAY_OIDC_REQUIRED_CLAIM") != ssoEnv["HOOKRELAY_OIDC_REQUIRED_CLAIM"] {
		t.Errorf("codec-server does not check the UI's issuer, audience and required claim: %v", codec.Environment)
	}
	if !strings.HasPrefix(get(codec.Environment, "HOOKRELAY_AUDIT_DB"), "postgres://") {
		t.Errorf("codec-server records decodes in no audit trail: %v", codec.Environment)
	}
	if slices.Contains(codec.Command, "--accept-path-token") {
		t.Error("codec-server accepts the path token outside the dev-only variant")
	}
}

// The dev-only variant, an override file, turns sign-in off and puts the
// codec token in the UI's codec endpoint; it says so, and touches nothing
// but the UI and the codec server.
func TestComposeDevUIVariant(t *testing.T) {
	p, err := loadCompose(t, fakeEnv, devUIFile) // no sign-in settings needed
	if err != nil {
		t.Fatalf("load with %s: %v", devUIFile, err)
	}
	ui, codec := p.Services["temporal-ui"], p.Services["codec-server"]
	if v := ui.Environment["TEMPORAL_AUTH_ENABLED"]; v == nil || *v != "false" {
		t.Errorf("dev UI: TEMPORAL_AUTH_ENABLED %v", v)
	}
	if v := ui.Environment["TEMPORAL_CODEC_ENDPOINT"]; v == nil || *v != "http://127.0.0.1:8081/"+fakeEnv["HOOKRELAY_CODEC_TOKEN"] {
		t.Errorf("dev UI: codec endpoint %v, want the token as its path", v)
	}
	if !slices.Contains(codec.Command, "--accept-path-token") || !hasFlag(t, "worker", "codec-server", "--accept-path-token") {
		t.Errorf("dev codec-server command %q", codec.Command)
	}
	text, err := os.ReadFile("../" + devUIFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(text), "# DEV ONLY") {
		t.Errorf("%s does not open by saying it is for development only", devUIFile)
	}
	var raw struct {
		Services map[string]any `yaml:"services"`
	}
	if err := yaml.Unmarshal(text, &raw); err != nil {
		t.Fatal(err)
	}
	var got []string
	for name := range raw.Services {
		got = append(got, name)
	}
	if slices.Sort(got); !slices.Equal(got, []string{"codec-server", "temporal-ui"}) {
		t.Errorf("%s overrides %v, want only temporal-ui and codec-server", devUIFile, got)
	}
	if _, err := loadCompose(t, nil, devUIFile); err == nil || !strings.Contains(err.Error(), "make deploy-secrets") {
		t.Errorf("the dev UI without .env: %v, want an error saying to run make deploy-secrets", err)
	}
}

// subcommand is the subcommand a hookrelay service runs ("" for none).
func subcommand(s types.ServiceConfig) string {
	if len(s.Command) > 0 && !strings.HasPrefix(s.Command[0], "-") {
		return s.Command[0]
	}
	return ""
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
	helpMu    sync.Mutex
	helpCache = map[string]string{}
)

// hasFlag reports whether `binary [sub] --help` lists flag, for the binary
// as the Dockerfile builds it.
func hasFlag(t *testing.T, binary, sub, flag string) bool {
	t.Helper()
	dir := builtBinaries(t)
	helpMu.Lock()
	defer helpMu.Unlock()
	key := binary + " " + sub
	help, ok := helpCache[key]
	if !ok {
		args := []string{"--help"}
		if sub != "" {
			args = []string{sub, "--help"}
		}
		out, _ := exec.Command(filepath.Join(dir, binary), args...).CombinedOutput()
		help = string(out)
		if !strings.Contains(help, "--") {
			t.Fatalf("%s %s --help printed no flags:\n%s", binary, sub, help)
		}
		helpCache[key] = help
	}
	return regexp.MustCompile(`(?m)^\s+(-\w, )?` + regexp.QuoteMeta(flag) + `\b`).MatchString(help)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}
