package endpointsource

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/temporalclient"
)

// The registry needs the payload keys, --insecure-plaintext or not; a
// process opening it says so, as a command-line mistake.
func TestOpenRegistryNeedsKeys(t *testing.T) {
	src := cmdline.Endpoints{DB: "sqlite:" + filepath.Join(t.TempDir(), "e.db")}
	_, err := Open(context.Background(), src, &temporalclient.Options{InsecurePlaintext: true}, Rules{}, false, nil)
	if !errors.Is(err, cmdline.ErrUsage) || !strings.Contains(err.Error(), "--codec-key-file") {
		t.Fatalf("without a key file: %v", err)
	}

	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(t.TempDir(), "codec.key")
	os.WriteFile(keyFile, []byte("k1:"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
	conn := &temporalclient.Options{CodecKeyFile: keyFile}
	eps, err := Open(context.Background(), src, conn, Rules{AllowCIDRs: []string{"127.0.0.0/8"}}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eps.Close()
	if eps.Registry == nil || eps.File != nil || eps.Source == nil || !strings.Contains(eps.Count(), "sqlite") {
		t.Fatalf("opened %+v", eps)
	}
	// The guard at registration admits what --allow-cidr admits.
	url, events := "http://127.0.0.1:9000/hook", []string{"*"}
	if _, _, err := eps.Registry.Create(context.Background(), "acct", registryFields(&url, &events)); err != nil {
		t.Fatalf("an admitted loopback URL: %v", err)
	}
	if _, err := conn.DataConverter(); err != nil {
		t.Fatalf("the data converter reuses the loaded keys: %v", err)
	}
}

func registryFields(url *string, events *[]string) registry.Fields {
	return registry.Fields{URL: url, Events: events}
}

// A signing secret's file that group or others may read is warned about at
// start, naming the endpoint, as the payload key file is; one only its
// owner reads is not.
func TestWarnsOnAnEndpointSecretFileOthersMayRead(t *testing.T) {
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	for name, mode := range map[string]os.FileMode{"open.secret": 0o644, "closed.secret": 0o600} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("whsec_"+base64.StdEncoding.EncodeToString(secret)), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, mode) // past the umask
	}
	file := filepath.Join(dir, "endpoints.yaml")
	yaml := "endpoints:\n" +
		"  - {id: open, url: \"https://hooks.example.com/a\", events: [\"*\"], secret_file: open.secret}\n" +
		"  - {id: closed, url: \"https://hooks.example.com/b\", events: [\"*\"], secret_file: closed.secret}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := openFile(file, Rules{}, true, logger); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `flag="secret_file of endpoint open"`) {
		t.Errorf("no warning for the endpoint whose secret file others may read:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "endpoint closed") {
		t.Errorf("a warning for the endpoint whose secret file only its owner reads:\n%s", logs.String())
	}
}
