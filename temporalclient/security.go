package temporalclient

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/internal/cmdline"
)

// Environment fallbacks of the connection security flags. All but
// TEMPORAL_API_KEY_FILE are the names the Temporal CLI reads, so one
// environment serves both.
const (
	EnvTLS           = "TEMPORAL_TLS"
	EnvTLSCert       = "TEMPORAL_TLS_CERT"
	EnvTLSKey        = "TEMPORAL_TLS_KEY"
	EnvTLSCA         = "TEMPORAL_TLS_CA"
	EnvTLSServerName = "TEMPORAL_TLS_SERVER_NAME"
	EnvAPIKey        = "TEMPORAL_API_KEY"
	EnvAPIKeyFile    = "TEMPORAL_API_KEY_FILE"
)

// SecurityEnv lists those variables, for callers that must clear them.
var SecurityEnv = []string{EnvTLS, EnvTLSCert, EnvTLSKey, EnvTLSCA, EnvTLSServerName, EnvAPIKey, EnvAPIKeyFile}

// Security is how the connection to Temporal is protected: TLS (verifying
// the server by the system roots or a private CA), mutual TLS (a client
// certificate), and a Temporal Cloud API key, which implies TLS. The zero
// value is plaintext, which suits a dev server on loopback only.
type Security struct {
	// TLS asks for TLS even when no other option here implies it, for a
	// frontend whose certificate the system roots verify.
	TLS bool
	// TLSCert and TLSKey are PEM files: the client certificate for mutual
	// TLS and its private key. One needs the other.
	TLSCert, TLSKey string
	// TLSCA is a PEM file of CA certificates to verify the server by,
	// instead of the system roots.
	TLSCA string
	// TLSServerName is the name the server's certificate must carry (and
	// the SNI sent), when it differs from the address's host.
	TLSServerName string
	// APIKey, or the content of APIKeyFile, is sent as a bearer token on
	// every call (Temporal Cloud API keys). At most one of them.
	APIKey, APIKeyFile string
}

func (s *Security) addFlags(fs *pflag.FlagSet) {
	cmdline.Bool(fs, &s.TLS, "tls", EnvTLS, false, "connect with TLS, verifying the server by the system roots or --tls-ca; implied by every option below")
	cmdline.String(fs, &s.TLSCert, "tls-cert", EnvTLSCert, "", "PEM client certificate for mutual TLS; needs --tls-key")
	cmdline.String(fs, &s.TLSKey, "tls-key", EnvTLSKey, "", "PEM private key of --tls-cert")
	cmdline.String(fs, &s.TLSCA, "tls-ca", EnvTLSCA, "", "PEM CA certificates to verify the server by, instead of the system roots")
	cmdline.String(fs, &s.TLSServerName, "tls-server-name", EnvTLSServerName, "", "name the server's certificate must carry, if not the address's host")
	cmdline.Secret(fs, &s.APIKey, "api-key", EnvAPIKey, "Temporal Cloud API key; implies TLS")
	// A key on the command line shows in the process list: it is read from
	// the environment or a file. The flag stays, warned, for the scripts
	// that use it.
	fs.MarkDeprecated("api-key", "the key shows in the process list to every local user; set "+EnvAPIKey+" or use --api-key-file")
	cmdline.String(fs, &s.APIKeyFile, "api-key-file", EnvAPIKeyFile, "", "file holding the Temporal Cloud API key; implies TLS")
}

// Enabled reports whether the connection uses TLS.
func (s Security) Enabled() bool {
	return s.TLS || s.TLSCert != "" || s.TLSKey != "" || s.TLSCA != "" || s.TLSServerName != "" || s.APIKey != "" || s.APIKeyFile != ""
}

// Mode names the protection for logs: plaintext, tls or mutual-tls, and
// +api-key. It never includes a key or a file's content.
func (s Security) Mode() string {
	mode := "plaintext"
	switch {
	case s.TLSCert != "":
		mode = "mutual-tls"
	case s.Enabled():
		mode = "tls"
	}
	if s.APIKey != "" || s.APIKeyFile != "" {
		mode += "+api-key"
	}
	return mode
}

// validate checks the options fit together; the files are read by TLSConfig
// and credentials.
func (s Security) validate() error {
	switch {
	case s.TLSCert != "" && s.TLSKey == "":
		return fmt.Errorf("--tls-key: required with --tls-cert, which is a client certificate and needs its private key (or set %s)", EnvTLSKey)
	case s.TLSKey != "" && s.TLSCert == "":
		return fmt.Errorf("--tls-cert: required with --tls-key: the private key's certificate (or set %s)", EnvTLSCert)
	case s.APIKey != "" && s.APIKeyFile != "":
		return fmt.Errorf("--api-key-file: conflicts with --api-key (or %s); choose one", EnvAPIKey)
	case strings.ContainsAny(s.APIKey, " \t\r\n"):
		return fmt.Errorf("--api-key: contains white space (or check %s)", EnvAPIKey)
	}
	return nil
}

// TLSConfig reads the certificate files and returns the TLS configuration,
// or nil for plaintext. Its errors name the flag at fault and never quote
// a file's content.
func (s Security) TLSConfig() (*tls.Config, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if !s.Enabled() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.TLSServerName}
	if s.TLSCert != "" {
		pair, err := loadKeyPair(s.TLSCert, s.TLSKey)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if s.TLSCA != "" {
		pool, err := loadCAs(s.TLSCA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// credentials returns the API key credentials, or nil without a key.
func (s Security) credentials() (client.Credentials, error) {
	key := s.APIKey
	if s.APIKeyFile != "" {
		data, err := os.ReadFile(s.APIKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--api-key-file: %w", err)
		}
		if key = strings.TrimSpace(string(data)); key == "" {
			return nil, fmt.Errorf("--api-key-file %s: the file is empty", s.APIKeyFile)
		}
		if strings.ContainsAny(key, " \t\r\n") {
			return nil, fmt.Errorf("--api-key-file %s: the key contains white space; the file must hold the key alone", s.APIKeyFile)
		}
	}
	if key == "" {
		return nil, nil
	}
	return client.NewAPIKeyStaticCredentials(key), nil
}

// loadKeyPair reads a client certificate and its key, checking each file
// on its own first so that the error names the right flag.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--tls-cert: %w", err)
	}
	certs, err := parseCertificates(certPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--tls-cert %s: %w", certFile, err)
	}
	if now := time.Now(); now.After(certs[0].NotAfter) {
		return tls.Certificate{}, fmt.Errorf("--tls-cert %s: the certificate expired at %s", certFile, certs[0].NotAfter.UTC().Format(time.RFC3339))
	} else if now.Before(certs[0].NotBefore) {
		return tls.Certificate{}, fmt.Errorf("--tls-cert %s: the certificate is not valid before %s", certFile, certs[0].NotBefore.UTC().Format(time.RFC3339))
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--tls-key: %w", err)
	}
	if !hasPEMBlock(keyPEM, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }) {
		return tls.Certificate{}, fmt.Errorf("--tls-key %s: no PEM private key in the file", keyFile)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return tls.Certificate{}, fmt.Errorf("--tls-key %s: does not match the certificate in --tls-cert %s", keyFile, certFile)
		}
		// The tls package's errors describe the key's form, never its content.
		return tls.Certificate{}, fmt.Errorf("--tls-key %s: %w", keyFile, err)
	}
	return pair, nil
}

func loadCAs(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	certs, err := parseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// parseCertificates returns every PEM certificate in data, and fails if
// there is none or one does not parse.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate in the file")
	}
	return certs, nil
}

func hasPEMBlock(data []byte, typeOK func(string) bool) bool {
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			return false
		}
		if typeOK(block.Type) {
			return true
		}
	}
}
