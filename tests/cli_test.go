package tests

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// Bad input to the commands: a one-line message naming the problem, a
// non-zero exit, no stack trace, and nothing started.
func TestStarterRefusesBadInput(t *testing.T) {
	good := endpointsFile(t, "acme", "https://hooks.acme.example/mail", "")
	badEndpoints := writeFile(t, "bad.yaml", "endpoints:\n  - id: acme\n    url: https://hooks.acme.example/mail\n    events: ['*']\n    secret: whsec_AAAA\n")
	ev := sampleEvent(event.Delivered, 201)
	token := writeFile(t, "token", "fake-test-token-0123456789\n")
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  []string
	}{
		{"no command", "", nil, 2, []string{"no command"}},
		{"unknown command", "", []string{"deliver"}, 2, []string{`unknown command "deliver"`}},
		{"unknown flag", ev, []string{"send", "--endpoints", good, "--colour"}, 2, []string{"colour"}},
		{"send without endpoints", ev, []string{"send"}, 2, []string{"--endpoints"}},
		{"bad output format", ev, []string{"send", "--endpoints", good, "--output", "yaml"}, 2, []string{"--output", "yaml"}},
		{"bad temporal address", ev, []string{"send", "--endpoints", good, "--temporal-address", "nohost"}, 2, []string{"--temporal-address", "nohost"}},
		{"event not JSON", "hello", []string{"send", "--endpoints", good}, 1, []string{"event: body"}},
		{"unknown event name", strings.Replace(ev, event.Delivered, "api_mail_log_clicked", 1), []string{"send", "--endpoints", good}, 1, []string{"event_name", "api_mail_log_clicked"}},
		{"non-numeric payload.id", strings.Replace(ev, `"id":201`, `"id":"x"`, 1), []string{"send", "--endpoints", good}, 1, []string{"payload.id"}},
		{"missing payload.time", strings.Replace(ev, `"time":"2026-04-18T20:27:25.379Z",`, "", 1), []string{"send", "--endpoints", good}, 1, []string{"payload.time"}},
		{"event over 256 KiB", strings.Replace(ev, "Fake subject", strings.Repeat("x", event.MaxBodyBytes), 1), []string{"send", "--endpoints", good}, 1, []string{"body", "limit"}},
		{"missing event file", "", []string{"send", "--endpoints", good, "--event", "/nonexistent/event.json"}, 1, []string{"--event"}},
		{"invalid endpoints file", ev, []string{"send", "--endpoints", badEndpoints}, 1, []string{`endpoint "acme"`, "secret:"}},
		{"missing endpoints file", ev, []string{"send", "--endpoints", "/nonexistent/endpoints.yaml"}, 1, []string{"endpoints file"}},
		{"unreachable server", ev, []string{"send", "--endpoints", good, "--temporal-address", "127.0.0.1:1"}, 1, []string{"connect to Temporal at 127.0.0.1:1"}},
		{"status without id", "", []string{"status"}, 2, []string{"DELIVERY_ID"}},
		{"status malformed id", "", []string{"status", "no-colon-here"}, 2, []string{"<endpoint-id>:<event-id>"}},
		{"status unknown id", "", []string{"status", "acme:evt_does_not_exist"}, 1, []string{"not found"}},
		{"no codec key", ev, []string{"send", "--endpoints", good, "--codec-key-file", ""}, 2, []string{"--codec-key-file: required"}},
		{"unreadable key file", ev, []string{"send", "--endpoints", good, "--codec-key-file", "/nonexistent/codec.key"}, 1, []string{"--codec-key-file", "/nonexistent/codec.key"}},
		{"serve without a token", "", []string{"serve", "--endpoints", good}, 2, []string{"no API token", "--api-token-file", "HOOKRELAY_API_TOKEN", "--insecure-no-auth"}},
		{"serve with a short token", "", []string{"serve", "--endpoints", good, "--api-token-file", writeFile(t, "token", "short\n")}, 2, []string{"at least 16"}},
		{"serve with an empty token file", "", []string{"serve", "--endpoints", good, "--api-token-file", writeFile(t, "token", "\n")}, 2, []string{"--api-token-file", "empty"}},
		{"serve with a missing token file", "", []string{"serve", "--endpoints", good, "--api-token-file", "/nonexistent/token"}, 1, []string{"--api-token-file"}},
		{"serve with a token and no auth", "", []string{"serve", "--endpoints", good, "--api-token-file", token, "--insecure-no-auth"}, 2, []string{"--insecure-no-auth"}},
		{"serve with bad frame ancestors", "", []string{"serve", "--endpoints", good, "--api-token-file", token, "--portal-frame-ancestors", "https://mail.example.com; script-src *"}, 2, []string{"--portal-frame-ancestors"}},
		{"serve with a relative portal base URL", "", []string{"serve", "--endpoints", good, "--api-token-file", token, "--portal-base-url", "hooks.example.com"}, 2, []string{"--portal-base-url", "absolute"}},
		{"serve without endpoints", "", []string{"serve", "--api-token-file", token}, 2, []string{"--endpoints"}},
		{"serve on a bad address", "", []string{"serve", "--endpoints", good, "--api-token-file", token, "--listen", "nohost"}, 1, []string{"--listen"}},
		{"serve with a worker flag but no worker", "", []string{"serve", "--endpoints", good, "--api-token-file", token, "--pollers", "4"}, 2, []string{"--pollers", "--worker"}},
		{"serve with a bad hosted worker flag", "", []string{"serve", "--endpoints", good, "--api-token-file", token, "--worker", "--allow-cidr", "10.0.0.1"}, 2, []string{"--allow-cidr", `"10.0.0.1"`}},
		{"serve with a bad deprecated worker flag", "", []string{"serve", "--endpoints", good, "--api-token-file", token, "--worker", "--worker-pollers", "-2"}, 2, []string{"--pollers", "-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := starter(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, errOut)
			}
			if strings.Contains(errOut, "goroutine ") || strings.Contains(errOut, "panic") {
				t.Fatalf("stack trace on stderr:\n%s", errOut)
			}
			// The message is the one line starting "starter: " (a deprecated
			// flag's notice may come before it).
			var firstLine string
			for _, l := range strings.Split(errOut, "\n") {
				if strings.HasPrefix(l, "starter: ") {
					firstLine = l
					break
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(firstLine, w) {
					t.Errorf("stderr message line %q lacks %q (stderr %q)", firstLine, w, errOut)
				}
			}
			if out != "" && tt.name != "no command" {
				t.Errorf("stdout on failure: %q", out)
			}
		})
	}
	// None of those started a workflow on this test's task queue.
	countOnQueue(t, 0)
}

func TestWorkerRefusesBadConfig(t *testing.T) {
	badURL := writeFile(t, "endpoints.yaml", fmt.Sprintf("endpoints:\n  - id: acme\n    url: ftp://x.example.com/\n    events: ['*']\n    secret: %s\n", testSecret))
	unsetEnv := writeFile(t, "endpoints.yaml", "endpoints:\n  - id: acme\n    url: https://x.example.com/\n    events: ['*']\n    secret_env: HOOKRELAY_TEST_SECRET_NOT_SET\n")
	good := endpointsFile(t, "acme", "https://x.example.com/", "")
	plainHTTP := endpointsFile(t, "acme", "http://x.example.com/", "")
	shortKey := writeFile(t, "short.key", "# a key too short\nk1:"+strings.Repeat("A", 24)+"\n")
	key := []string{"--codec-key-file", codecKeyFile}
	tests := []struct {
		name string
		args []string
		want []string
		code int // 2 for a command-line mistake, 1 for anything else
	}{
		{"no endpoints", key, []string{"--endpoints"}, 2},
		{"bad url", append([]string{"--endpoints", badURL}, key...), []string{`endpoint "acme"`, "url:"}, 1},
		{"secret env unset", append([]string{"--endpoints", unsetEnv}, key...), []string{`endpoint "acme"`, "HOOKRELAY_TEST_SECRET_NOT_SET is not set"}, 1},
		{"unknown flag", []string{"--frobnicate"}, []string{"frobnicate"}, 2},
		{"negative pollers", []string{"--endpoints", badURL, "--pollers", "-1"}, []string{"--pollers", "-1"}, 2},
		{"negative attempts per second", []string{"--endpoints", badURL, "--attempts-per-second", "-3"}, []string{"--attempts-per-second"}, 2},
		{"knob from a bad environment value", []string{"--endpoints", badURL, "--env", "HOOKRELAY_MAX_CONCURRENT_ATTEMPTS=lots"}, []string{"HOOKRELAY_MAX_CONCURRENT_ATTEMPTS", "lots"}, 2},
		{"metrics on a bad address", []string{"--endpoints", endpointsFile(t, "acme", "https://x.example.com/", ""), "--insecure-plaintext", "--metrics-listen", "nohost"}, []string{"--metrics-listen"}, 2},
		{"metrics on the customers' network", []string{"--endpoints", good, "--insecure-plaintext", "--allow-cidr", "172.30.89.0/24", "--metrics-listen", "172.30.89.5:9090"}, []string{"--metrics-listen", "172.30.89.0/24", "--allow-cidr"}, 2},
		{"no codec key", []string{"--endpoints", good}, []string{"--codec-key-file: required", "--insecure-plaintext"}, 2},
		{"key and plaintext", append([]string{"--endpoints", good, "--insecure-plaintext"}, key...), []string{"--insecure-plaintext", "conflicts"}, 2},
		{"missing key file", []string{"--endpoints", good, "--codec-key-file", "/nonexistent/codec.key"}, []string{"--codec-key-file", "/nonexistent/codec.key"}, 1},
		{"short key", []string{"--endpoints", good, "--codec-key-file", shortKey}, []string{"--codec-key-file", "line 2", "18 bytes, want 32"}, 1},
		{"unreachable server", append([]string{"--endpoints", good, "--temporal-address", "127.0.0.1:1"}, key...), []string{"connect to Temporal"}, 1},
		{"https only", append([]string{"--endpoints", plainHTTP, "--https-only"}, key...), []string{`endpoint "acme"`, "url:", "--https-only"}, 1},
		{"bad allow-cidr", append([]string{"--endpoints", good, "--allow-cidr", "127.0.0.1"}, key...), []string{"--allow-cidr", `"127.0.0.1"`}, 2},
		{"codec server: audience without issuer", []string{"codec-server", "--oidc-audience", "hookrelay-codec"}, []string{"--oidc-issuer"}, 2},
		{"codec server: plain http issuer", []string{"codec-server", "--oidc-issuer", "http://sso.example.com/realms/ops?x=fake-7741", "--oidc-audience", "a"}, []string{"--oidc-issuer", "https"}, 2},
		{"codec server: a shared-secret algorithm", []string{"codec-server", "--oidc-issuer", "https://sso.example.com", "--oidc-audience", "a", "--oidc-algorithms", "HS256"}, []string{"--oidc-algorithms", "HS256"}, 2},
		{"codec server: an issuer without a required claim", []string{"codec-server", "--oidc-issuer", "https://sso.example.com", "--oidc-audience", "a"}, []string{"--oidc-required-claim"}, 2},
		{"codec server: a required claim without a value", []string{"codec-server", "--oidc-issuer", "https://sso.example.com", "--oidc-audience", "a", "--oidc-required-claim", "groups"}, []string{"--oidc-required-claim", "NAME=VALUE"}, 2},
		{"proxy-allow-cidr without a proxy", append([]string{"--endpoints", good, "--proxy-allow-cidr", "10.0.0.0/8"}, key...), []string{"--proxy-allow-cidr", "--use-env-proxy"}, 2},
	}
	// Each bound on an endpoint's values, just outside it in the file: the
	// worker refuses to start, naming the entry, the field and the bound.
	for _, b := range []struct{ name, extra, field, bound string }{
		{"timeout", "    timeout: 31s\n", "timeout:", "30s maximum"},
		{"probe_every", "    circuit: {probe_every: [1m, 4s]}\n", "circuit.probe_every[1]:", "5s minimum"},
		{"drain_per_second", "    circuit: {drain_per_second: 1e-9}\n", "circuit.drain_per_second:", "0.1 minimum"},
		{"open_after", "    circuit: {open_after: 1001}\n", "circuit.open_after:", "1 to 1000"},
		{"park_limit", "    circuit: {park_limit: 721h}\n", "circuit.park_limit:", "720h maximum"},
		{"retry steps", "    retry_schedule: [" + strings.Repeat("1s, ", 30) + "1s]\n", "retry_schedule:", "at most 30"},
		{"retry total", "    retry_schedule: [168h, 168h, 168h, 168h, 49h]\n", "retry_schedule:", "720h maximum"},
		{"max_in_flight", "    max_in_flight: 101\n", "max_in_flight:", "1 to 100"},
		{"rate_limit", "    rate_limit: 1001\n", "rate_limit:", "0.1 to 1000"},
	} {
		tests = append(tests, struct {
			name string
			args []string
			want []string
			code int
		}{"bound " + b.name, append([]string{"--endpoints", endpointsFile(t, "acme", "https://x.example.com/", b.extra)}, key...),
			[]string{`endpoint "acme"`, b.field, b.bound}, 1})
	}
	within := endpointsFile(t, "acme", "https://x.example.com/", "    timeout: 20s\n")
	throttled := endpointsFile(t, "acme", "https://x.example.com/", "    max_in_flight: 20\n    rate_limit: 0.5\n")
	var quota []testenv.Endpoint
	for _, id := range []string{"acme-1", "acme-2", "acme-3"} {
		quota = append(quota, testenv.Endpoint{ID: id, URL: "https://x.example.com/" + id, Extra: "    account_id: acct-quota\n"})
	}
	overQuota := writeEndpoints(t, quota...)
	tests = append(tests, []struct {
		name string
		args []string
		want []string
		code int
	}{
		{"bound narrowed by flag", append([]string{"--endpoints", within, "--max-attempt-timeout", "10s"}, key...), []string{`endpoint "acme"`, "timeout: 20s is over the 10s maximum"}, 1},
		{"bound widened by flag", append([]string{"--endpoints", within, "--max-attempt-timeout", "1m"}, key...), []string{"--max-attempt-timeout", "only narrow"}, 2},
		{"bound widened by environment", append([]string{"--endpoints", within, "--env", "HOOKRELAY_MIN_PROBE_EVERY=1s"}, key...), []string{"--min-probe-every", "only narrow"}, 2},
		{"max_in_flight narrowed by flag", append([]string{"--endpoints", throttled, "--max-in-flight-limit", "10"}, key...), []string{`endpoint "acme"`, "max_in_flight: 20 must be 1 to 10"}, 1},
		{"rate_limit narrowed by environment", append([]string{"--endpoints", throttled, "--env", "HOOKRELAY_MIN_RATE_LIMIT=1"}, key...), []string{`endpoint "acme"`, "rate_limit: 0.5 must be 0 (no limit) or 1 to 1000"}, 1},
		{"max_in_flight bound widened by flag", append([]string{"--endpoints", throttled, "--max-in-flight-limit", "101"}, key...), []string{"--max-in-flight-limit: 101 must be 1 to 100", "only narrow"}, 2},
		{"rate_limit bound widened by environment", append([]string{"--endpoints", throttled, "--env", "HOOKRELAY_MAX_RATE_LIMIT=5000"}, key...), []string{"--max-rate-limit: 5000", "at most 1000", "only narrow"}, 2},
		{"rate_limit bounds crossed", append([]string{"--endpoints", throttled, "--min-rate-limit", "20", "--max-rate-limit", "10"}, key...), []string{"--min-rate-limit: 20 is above --max-rate-limit 10"}, 2},
		{"endpoint quota", append([]string{"--endpoints", overQuota, "--max-endpoints-per-account", "2"}, key...),
			[]string{`endpoint "acme-3"`, `account "acct-quota"`, "over the 2", "max-endpoints-per-account"}, 1},
		{"endpoint quota past its ceiling", append([]string{"--endpoints", overQuota, "--max-endpoints-per-account", "1001"}, key...),
			[]string{"--max-endpoints-per-account", "1 to 1000"}, 2},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// "--env K=V" in a row's args sets an environment variable instead.
			args, env := []string{}, []string{"PATH=/usr/bin:/bin"}
			for i := 0; i < len(tt.args); i++ {
				if tt.args[i] == "--env" {
					env = append(env, tt.args[i+1])
					i++
					continue
				}
				args = append(args, tt.args[i])
			}
			cmd := exec.Command(filepath.Join(binDir, "worker"), args...)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			exitErr, ok := err.(*exec.ExitError)
			if !ok || exitErr.ExitCode() != tt.code {
				t.Fatalf("worker %v: err %v, want exit status %d\n%s", tt.args, err, tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output %q lacks %q", out, w)
				}
			}
		})
	}
}
