package tests

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// Keys per purpose and row MACs end to end, on `starter serve` with its
// worker: in one account, an endpoint sealed under a key since removed from
// the key file and one whose URL was changed by SQL are each refused alone
// (routing_error in the 202, nothing POSTed for them, the changed URL never
// reached) while the account's third endpoint gets the event; `starter
// registry reseal` with the key back moves the first to the current key,
// refuses the changed row until its URL is the one registered, runs again
// with nothing to do, and then the event reaches all three.
func TestRegistryRowRefusedAlone(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) { rowRefusedAlone(t, registryDSN(t, store)) })
	}
}

// routedDelivery is one delivery of a 202, with its routing error.
type routedDelivery struct {
	EndpointID   string `json:"endpoint_id"`
	RoutingError string `json:"routing_error"`
}

func rowRefusedAlone(t *testing.T, dsn string) {
	const account = "acct-keys"
	suiteKeys, err := os.ReadFile(codecKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	gone := testenv.CodecKeyLine("gone")
	goneCurrent := writeFile(t, "gone-current.key", string(suiteKeys)+gone+"\n")
	goneBack := writeFile(t, "gone-back.key", gone+"\n"+string(suiteKeys))
	rc := newMultiReceiver(t)

	// A: registered while "gone" was the current key.
	out, errOut, code := starter(t, "", "endpoint", "create", "--account", account, "--url", rc.url+"/"+account+"/a", "--events", "*",
		"--endpoints-db", dsn, "--codec-key-file", goneCurrent, "--allow-cidr", "127.0.0.0/8", "--output", "json")
	var a apiEndpoint
	if err := json.Unmarshal([]byte(out), &a); code != 0 || err != nil {
		t.Fatalf("endpoint create: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	h := hookrelay(t)
	srv := startServeWith(t, h, "--https-only=false", "--endpoints-db", dsn, "--worker", "--allow-cidr", "127.0.0.0/8")
	b, err := srv.createEndpoint(account, map[string]any{"url": rc.url + "/" + account + "/b", "events": []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := srv.createEndpoint(account, map[string]any{"url": rc.url + "/" + account + "/c", "events": []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	for path, secret := range map[string]string{"a": a.Secret, "b": b.Secret, "c": c.Secret} {
		if err := rc.register("/"+account+"/"+path, secret); err != nil {
			t.Fatal(err)
		}
	}
	execSQL(t, dsn, `UPDATE endpoints SET url = '`+rc.url+`/stolen' WHERE id = '`+c.ID+`'`)

	got := publishRouted(t, srv, accountEvent(account, event.Delivered, 1))
	switch {
	case got[b.ID] != "":
		t.Fatalf("the intact endpoint was refused: %s", got[b.ID])
	case !strings.Contains(got[a.ID], a.ID) || !strings.Contains(got[a.ID], `"gone"`):
		t.Fatalf("the endpoint sealed under the removed key: routing_error %q, want one naming it and the key", got[a.ID])
	case !strings.Contains(got[c.ID], c.ID) || !strings.Contains(got[c.ID], "changed outside hookrelay"):
		t.Fatalf("the endpoint changed by SQL: routing_error %q, want one naming it", got[c.ID])
	}
	awaitHits(t, rc, 1, "/"+account+"/b")

	// Reseal without the key: A and C fail, B is current already.
	reseal := func(keys string, wantCode int, want string) {
		t.Helper()
		out, errOut, code := starter(t, "", "registry", "reseal", "--endpoints-db", dsn, "--codec-key-file", keys)
		if code != wantCode || !strings.Contains(out, want) {
			t.Fatalf("registry reseal: exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, wantCode, want)
		}
		if wantCode != 0 && (!strings.Contains(errOut, c.ID) || !strings.Contains(errOut, "changed outside hookrelay")) {
			t.Fatalf("registry reseal's stderr does not name the changed row %s: %q", c.ID, errOut)
		}
	}
	reseal(codecKeyFile, 1, "resealed 0, already current 1, failed 2")
	reseal(goneBack, 1, "resealed 1, already current 1, failed 1")
	execSQL(t, dsn, `UPDATE endpoints SET url = '`+rc.url+`/`+account+`/c' WHERE id = '`+c.ID+`'`)
	reseal(goneBack, 0, "resealed 0, already current 3, failed 0")

	got = publishRouted(t, srv, accountEvent(account, event.Delivered, 2))
	for id, e := range got {
		if e != "" {
			t.Fatalf("after the reseal, %s: routing_error %q", id, e)
		}
	}
	awaitHits(t, rc, 2, "/"+account+"/a", "/"+account+"/b", "/"+account+"/c")
	for _, h := range rc.all() {
		if h.verifyErr != nil || h.path == "/stolen" {
			t.Errorf("POST to %s (payload %d): %v", h.path, h.payloadID, h.verifyErr)
		}
	}
}

// publishRouted posts one event and returns each endpoint's routing error
// ("" for a delivery started).
func publishRouted(t *testing.T, srv *ingestServer, body string) map[string]string {
	t.Helper()
	r, err := srv.post(body)
	if err != nil || r.code != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %v %d %s", err, r.code, r.body)
	}
	var answer struct {
		Deliveries []routedDelivery `json:"deliveries"`
	}
	if err := json.Unmarshal(r.body, &answer); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range answer.Deliveries {
		out[d.EndpointID] = d.RoutingError
	}
	if len(out) != 3 {
		t.Fatalf("the 202 answers %d endpoints, want the account's 3: %s", len(out), r.body)
	}
	return out
}

// awaitHits waits until each path got a verified POST of payload id.
func awaitHits(t *testing.T, rc *multiReceiver, id int, paths ...string) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("payload %d at %v", id, paths), func() bool {
		var seen []string
		for _, h := range rc.all() {
			if h.payloadID == id && h.verifyErr == nil {
				seen = append(seen, h.path)
			}
		}
		for _, p := range paths {
			if !slices.Contains(seen, p) {
				return false
			}
		}
		return true
	})
}

// execSQL runs one statement on the registry's database, as someone with
// write access to it but not the keys would.
func execSQL(t *testing.T, dsn, statement string) {
	t.Helper()
	driver, conn := "pgx", dsn
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		driver, conn = "sqlite", "file:"+path
	}
	db, err := sql.Open(driver, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(statement); err != nil {
		t.Fatalf("%s: %v", statement, err)
	}
}
