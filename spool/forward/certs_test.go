package forward

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeward/edgeward/config"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files into a temporary folder.
type testPKI struct {
	dir                   string
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
	pool                  *x509.CertPool
	server                tls.Certificate
}

// newPKI generates the CA and both certificates.
func newPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}

	caKey, caCert := p.issue(t, "edgeward test ca", nil, nil, func(c *x509.Certificate) {
		c.IsCA = true
		c.BasicConstraintsValid = true
		c.KeyUsage = x509.KeyUsageCertSign
	})
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", caCert.Raw)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)

	p.serverCert, p.serverKey = p.leaf(t, "server", caKey, caCert, func(c *x509.Certificate) {
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		c.DNSNames = []string{"localhost"}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	p.clientCert, p.clientKey = p.leaf(t, "client", caKey, caCert, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})

	server, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	p.server = server
	return p
}

// leaf issues a certificate signed by the CA and writes it and its key.
func (p *testPKI) leaf(t testing.TB, name string, caKey *ecdsa.PrivateKey, ca *x509.Certificate, edit func(*x509.Certificate)) (string, string) {
	t.Helper()
	key, cert := p.issue(t, "edgeward test "+name, caKey, ca, edit)

	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name+".pem", "CERTIFICATE", cert.Raw), p.write(t, name+".key", "EC PRIVATE KEY", der)
}

// issue makes a key and a certificate, self-signed when parent is nil.
func (p *testPKI) issue(t testing.TB, cn string, parentKey *ecdsa.PrivateKey, parent *x509.Certificate, edit func(*x509.Certificate)) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	edit(tmpl)
	if parent == nil {
		parent, parentKey = tmpl, key
	}

	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// write stores one PEM block, readable by every user (mosquitto drops
// privileges unless told otherwise).
func (p *testPKI) write(t testing.TB, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	data := pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// clientTLS is the forwarder's TLS configuration, loaded from the files
// as the daemon does it.
func (p *testPKI) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	cfg, err := LoadTLS(config.TLS{CA: p.caFile, Cert: p.clientCert, Key: p.clientKey})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
