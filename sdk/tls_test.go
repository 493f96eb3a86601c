package sdk

import (
	"crypto/tls"
	"net"
	"testing"
)

// handshake runs a TLS handshake between client and server configs over
// loopback TCP (buffered, so a refusal cannot deadlock both writers).
func handshake(client, server *tls.Config) (clientErr, serverErr error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err, err
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		b, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		s := tls.Server(b, server)
		err = s.Handshake()
		if err == nil {
			// TLS 1.3 checks the client certificate after the client's
			// handshake returns: read to see the verdict.
			_, err = s.Read(make([]byte, 1))
		}
		done <- err
		b.Close()
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err, err
	}
	c := tls.Client(a, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		_, clientErr = c.Write([]byte{1})
	}
	serverErr = <-done
	a.Close()
	return clientErr, serverErr
}

func TestHostTLS(t *testing.T) {
	host, env, err := NewHostTLS()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(TLSEnv, env)
	provider, err := serverTLSFromEnv()
	if err != nil || provider == nil {
		t.Fatalf("serverTLSFromEnv: %v", err)
	}
	server, _ := provider()
	if ce, se := handshake(host, server); ce != nil || se != nil {
		t.Fatalf("matching pair: client %v, server %v", ce, se)
	}
	// A client with another certificate (another host) is refused.
	other, _, err := NewHostTLS()
	if err != nil {
		t.Fatal(err)
	}
	other.RootCAs = host.RootCAs
	if _, se := handshake(other, server); se == nil {
		t.Errorf("server accepted a client certificate it was not given")
	}
	// A client without a certificate is refused too.
	bare := host.Clone()
	bare.Certificates = nil
	if _, se := handshake(bare, server); se == nil {
		t.Errorf("server accepted a client without a certificate")
	}
}

func TestServerTLSWithoutEnv(t *testing.T) {
	t.Setenv(TLSEnv, "")
	if p, err := serverTLSFromEnv(); p != nil || err != nil {
		t.Errorf("without %s: provider %v, err %v (want AutoMTLS fallback)", TLSEnv, p != nil, err)
	}
	t.Setenv(TLSEnv, "{not json")
	if _, err := serverTLSFromEnv(); err == nil {
		t.Errorf("garbage accepted")
	}
}
