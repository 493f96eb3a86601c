package sdk

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// TLSEnv names the environment variable through which a Volt host hands a
// plugin the mutual-TLS material it made for this one connection (JSON of
// TLSMaterial). A plugin started without it falls back to go-plugin's
// AutoMTLS, so other hosts keep working.
//
// Why not AutoMTLS everywhere: go-plugin generates P-521 certificates on
// both sides at every start, about 45 ms of a plugin's start here; Ed25519
// certificates made by the host cost well under a millisecond. The material
// travels in the child's environment, readable only by its own user (as
// AutoMTLS's client certificate does).
const TLSEnv = "VOLT_PLUGIN_TLS"

// TLSMaterial is the PEM-encoded server certificate and key the plugin
// serves with, and the client certificate it must require.
type TLSMaterial struct {
	ServerCert []byte `json:"serverCert"`
	ServerKey  []byte `json:"serverKey"`
	ClientCert []byte `json:"clientCert"`
}

// NewHostTLS makes a fresh Ed25519 certificate pair for one plugin
// connection: it returns the host's client tls.Config and the value of
// TLSEnv to put in the plugin's environment.
func NewHostTLS() (*tls.Config, string, error) {
	srvCert, srvKey, err := selfSigned("volt-plugin")
	if err != nil {
		return nil, "", err
	}
	cliCert, cliKey, err := selfSigned("volt-host")
	if err != nil {
		return nil, "", err
	}
	pair, err := tls.X509KeyPair(cliCert, cliKey)
	if err != nil {
		return nil, "", err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(srvCert) {
		return nil, "", errors.New("plugin tls: bad server certificate")
	}
	env, err := json.Marshal(TLSMaterial{ServerCert: srvCert, ServerKey: srvKey, ClientCert: cliCert})
	if err != nil {
		return nil, "", err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		RootCAs:      roots,
		ServerName:   "localhost",
		MinVersion:   tls.VersionTLS13,
	}, string(env), nil
}

// serverTLSFromEnv returns the plugin's TLS provider for TLSEnv, or nil when
// the host did not set it (go-plugin's AutoMTLS then applies).
func serverTLSFromEnv() (func() (*tls.Config, error), error) {
	v := os.Getenv(TLSEnv)
	if v == "" {
		return nil, nil
	}
	os.Unsetenv(TLSEnv) // nothing the plugin starts needs the key
	var m TLSMaterial
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("%s: %w", TLSEnv, err)
	}
	pair, err := tls.X509KeyPair(m.ServerCert, m.ServerKey)
	if err != nil {
		return nil, fmt.Errorf("%s: server certificate: %w", TLSEnv, err)
	}
	clients := x509.NewCertPool()
	if !clients.AppendCertsFromPEM(m.ClientCert) {
		return nil, fmt.Errorf("%s: bad client certificate", TLSEnv)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients,
		MinVersion:   tls.VersionTLS13,
	}
	return func() (*tls.Config, error) { return cfg, nil }, nil
}

// selfSigned makes a PEM certificate and PKCS#8 key for localhost, valid
// for a day (a plugin lives as long as one CLI invocation).
func selfSigned(cn string) (certPEM, keyPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              []string{"localhost"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), nil
}
