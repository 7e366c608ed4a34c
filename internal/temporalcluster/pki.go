package temporalcluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The names the cluster's certificates carry, as docker-compose.yml's do
// (scripts/deploy-secrets.sh): the frontend's clients verify it as
// FrontendServerName (and localhost, 127.0.0.1); the services verify each
// other as InternodeServerName, whatever address they dial.
const (
	FrontendServerName  = "temporal-frontend"
	InternodeServerName = "temporal-internode"
)

// TLSFiles are a cluster's certificates, PEM files in one directory, made
// fresh for each Start: two CAs, one signing the services' certificates
// (the frontend's, which clients verify, and the internode one, which the
// services present to each other as server and as client), the other
// signing the clients' certificates, the only ones the frontend admits.
type TLSFiles struct {
	Dir string
	// CA verifies the frontend's certificate (a client's --tls-ca) and the
	// services' internode certificate.
	CA string
	// ClientCA signed every client certificate the frontend accepts.
	ClientCA string
	// Frontend and FrontendKey are the frontend's server certificate.
	Frontend, FrontendKey string
	// Internode and InternodeKey are what history, matching and the
	// frontend present to each other.
	Internode, InternodeKey string
	// SystemWorker and SystemWorkerKey are the worker service's client
	// certificate for the frontend.
	SystemWorker, SystemWorkerKey string
	// Client and ClientKey are a client certificate (common name hookrelay)
	// for the processes of a test run: a client's --tls-cert and --tls-key.
	Client, ClientKey string
}

// pkiValidity is how long the certificates are valid: longer than any run.
const pkiValidity = 7 * 24 * time.Hour

// makeTLSFiles issues a cluster's certificates into dir.
func makeTLSFiles(dir string) (TLSFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return TLSFiles{}, fmt.Errorf("temporalcluster: certificates: %w", err)
	}
	f := TLSFiles{Dir: dir}
	serverCA, err := newAuthority(dir, "temporal-ca", &f.CA)
	if err != nil {
		return f, err
	}
	clientCA, err := newAuthority(dir, "temporal-client-ca", &f.ClientCA)
	if err != nil {
		return f, err
	}
	issues := []struct {
		ca         *authority
		name       string
		usage      []x509.ExtKeyUsage
		dns        []string
		cert, key  *string
		ipLoopback bool
	}{
		{serverCA, "temporal-frontend", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []string{FrontendServerName, "localhost"}, &f.Frontend, &f.FrontendKey, true},
		{serverCA, "temporal-internode", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, []string{InternodeServerName}, &f.Internode, &f.InternodeKey, false},
		{clientCA, "temporal-system-worker", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, &f.SystemWorker, &f.SystemWorkerKey, false},
		{clientCA, "hookrelay", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, &f.Client, &f.ClientKey, false},
	}
	for _, is := range issues {
		var ips []net.IP
		if is.ipLoopback {
			ips = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		if *is.cert, *is.key, err = is.ca.issue(is.name, is.usage, is.dns, ips); err != nil {
			return f, err
		}
	}
	return f, nil
}

// ClientTLS is a client's TLS configuration for the frontend: the client
// certificate in f, verifying the frontend by f.CA.
func (f TLSFiles) ClientTLS() (*tls.Config, error) {
	return f.tlsConfig(f.Client, f.ClientKey, FrontendServerName)
}

// internodeTLS is how the services' health checks reach history and
// matching: as a service does.
func (f TLSFiles) internodeTLS() (*tls.Config, error) {
	return f.tlsConfig(f.Internode, f.InternodeKey, InternodeServerName)
}

func (f TLSFiles) tlsConfig(cert, key, serverName string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("temporalcluster: certificate %s: %w", cert, err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("temporalcluster: CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("temporalcluster: CA %s: no certificate", f.CA)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: serverName}, nil
}

// authority is a CA that signs certificates into dir.
type authority struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newAuthority makes a CA named name, its certificate written to
// dir/name.pem (*certFile); its key stays in memory.
func newAuthority(dir, name string, certFile *string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("temporalcluster: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := sign(tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("temporalcluster: CA: %w", err)
	}
	*certFile = filepath.Join(dir, name+".pem")
	if err := writePEM(*certFile, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	return &authority{dir: dir, cert: cert, key: key}, nil
}

// issue signs a certificate for name and writes it and its key to
// dir/name.pem and dir/name-key.pem.
func (a *authority) issue(name string, usage []x509.ExtKeyUsage, dnsNames []string, ips []net.IP) (cert, key string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("temporalcluster: key of %s: %w", name, err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: usage,
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}
	der, err := sign(tmpl, a.cert, &k.PublicKey, a.key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", "", fmt.Errorf("temporalcluster: key of %s: %w", name, err)
	}
	cert, key = filepath.Join(a.dir, name+".pem"), filepath.Join(a.dir, name+"-key.pem")
	if err := writePEM(cert, "CERTIFICATE", der); err != nil {
		return "", "", err
	}
	return cert, key, writePEM(key, "PRIVATE KEY", keyDER)
}

// sign sets tmpl's serial number and validity and signs it with parent's key.
func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("temporalcluster: serial: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(pkiValidity)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("temporalcluster: sign %s: %w", tmpl.Subject.CommonName, err)
	}
	return der, nil
}

func writePEM(path, blockType string, der []byte) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("temporalcluster: %w", err)
	}
	return nil
}
