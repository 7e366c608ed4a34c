package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHealthcheck(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/healthz", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/healthz"
	ln.Close()

	if err := run([]string{srv.URL + "/healthz"}); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{srv.URL + "/readyz"}, "503 Service Unavailable"},
		{[]string{srv.URL + "/moved"}, "302 Found"},
		{[]string{"--timeout", "200ms", srv.URL + "/slow"}, "deadline exceeded"},
		{[]string{closed}, "connection refused"},
		{[]string{closed + "?token=fake-token-7741"}, "connection refused"},
		{[]string{"ftp://127.0.0.1/healthz?token=fake-token-7741"}, "not an http or https URL"},
		{[]string{"127.0.0.1:8080/healthz"}, "not an http or https URL"},
		{nil, "want one URL"},
		{[]string{"--timeout", "0s", srv.URL}, "--timeout"},
	} {
		err := run(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run(%q) = %v, want an error saying %q", c.args, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "fake-token") {
			t.Errorf("run(%q) = %v: the error quotes the URL's query", c.args, err)
		}
	}
}
