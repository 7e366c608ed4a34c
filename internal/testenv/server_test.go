package testenv

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestChooseMode(t *testing.T) {
	up := func() error { return nil }
	down := func() error { return fmt.Errorf("%w: connection refused", ErrNoDocker) }
	for _, c := range []struct {
		forced, address string
		docker          func() error
		want            Mode
		err             string
	}{
		{"", "temporal.internal:7233", up, ModeCluster, ""},
		{"", "", up, ModeDocker, ""},
		{"", "", down, ModeDevServer, ""},
		{"", "", nil, ModeDevServer, ""},     // the bench: docker only when forced
		{"docker", "", down, ModeDocker, ""}, // then skips, saying why
		{"docker", "temporal.internal:7233", up, ModeDocker, ""},
		{"docker", "", nil, ModeDocker, ""},
		{"devserver", "temporal.internal:7233", up, ModeDevServer, ""},
		{"cluster", "temporal.internal:7233", down, ModeCluster, ""},
		{"cluster", "", up, "", "needs TEMPORAL_ADDRESS"},
		{"kubernetes", "", up, "", `want cluster, docker or devserver`},
	} {
		got, err := ChooseMode(c.forced, c.address, c.docker)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ChooseMode(%q, %q): %q, %v; want %q, %q", c.forced, c.address, got, err, c.want, c.err)
		}
	}
}

// Docker is asked only when neither a forced mode nor an address decides.
func TestChooseModeAsksDockerOnlyWhenNeeded(t *testing.T) {
	asked := false
	probe := func() error { asked = true; return nil }
	for _, c := range [][2]string{{"devserver", ""}, {"", "temporal.internal:7233"}} {
		if _, err := ChooseMode(c[0], c[1], probe); err != nil || asked {
			t.Fatalf("ChooseMode(%q, %q): asked docker %v, err %v", c[0], c[1], asked, err)
		}
	}
}

func TestStartServerRefusesAnUnknownMode(t *testing.T) {
	_, err := StartServer(t.Context(), ServerOptions{Mode: "postgres"})
	if err == nil || !strings.Contains(err.Error(), `"postgres"`) {
		t.Fatalf("StartServer in an unknown mode: %v", err)
	}
}

// Without bin/temporal the dev server mode says where it looked and what to run.
func TestDevServerNeedsTheCLI(t *testing.T) {
	_, err := StartServer(t.Context(), ServerOptions{Mode: ModeDevServer, TemporalCLI: "/nonexistent/temporal"})
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "make tools") {
		t.Fatalf("dev server without the CLI: %v", err)
	}
}

// The container runs the dev server of the same CLI version bin/temporal is built from.
func TestDockerImageMatchesTheCLIVersion(t *testing.T) {
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	want := "TEMPORAL_CLI_VERSION := v" + DockerImageTag + "\n"
	if !strings.Contains(string(makefile), want) {
		t.Fatalf("the Makefile lacks %q: update DockerImageTag with TEMPORAL_CLI_VERSION", strings.TrimSpace(want))
	}
}
