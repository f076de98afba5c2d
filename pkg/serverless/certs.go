package serverless

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
	"time"
)

// Certs is the throwaway PKI of one launch: a CA that lives only in run's memory, the
// relay's server certificate for the address it advertises, and the client
// certificate the chaincode presents. The peer's own key never leaves run.
type Certs struct {
	CAPEM                       []byte
	ServerCert                  tls.Certificate
	ClientCertPEM, ClientKeyPEM []byte
	pool                        *x509.CertPool
}

// certLife is generous for a chaincode that lives as long as its transactions, and
// short enough that a leaked key is soon worthless.
const certLife = 24 * time.Hour

// MintCerts creates the launch's CA, a server certificate for host and a client certificate.
func MintCerts(host string) (*Certs, error) {
	now := time.Now().Add(-5 * time.Minute) // tolerate clock skew with the node
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kubecc relay launch CA"},
		NotBefore:             now,
		NotAfter:              now.Add(certLife),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("mint CA: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)

	leaf := func(cn string, usage x509.ExtKeyUsage, hosts ...string) ([]byte, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now,
			NotAfter:     now.Add(certLife),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else if h != "" {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		return der, key, err
	}
	srvDER, srvKey, err := leaf("kubecc relay", x509.ExtKeyUsageServerAuth, host, "localhost", "127.0.0.1")
	if err != nil {
		return nil, fmt.Errorf("mint server certificate: %w", err)
	}
	cliDER, cliKey, err := leaf("kubecc chaincode", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, fmt.Errorf("mint client certificate: %w", err)
	}
	cliKeyDER, err := x509.MarshalPKCS8PrivateKey(cliKey)
	if err != nil {
		return nil, err
	}
	c := &Certs{
		CAPEM:         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		ServerCert:    tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
		ClientCertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cliDER}),
		ClientKeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: cliKeyDER}),
		pool:          x509.NewCertPool(),
	}
	c.pool.AddCert(ca)
	return c, nil
}

// ServerTLS accepts only clients holding the launch's client certificate.
func (c *Certs) ServerTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.ServerCert},
		ClientCAs:    c.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLS is what the chaincode's side uses (tests use it too).
func (c *Certs) ClientTLS() (*tls.Config, error) {
	cert, err := tls.X509KeyPair(c.ClientCertPEM, c.ClientKeyPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: c.pool, MinVersion: tls.VersionTLS12}, nil
}

// PeerTLS builds the client TLS config for dialling the peer with the peer-minted
// certificate from chaincode.json.
func PeerTLS(certPEM, keyPEM, rootPEM string) (*tls.Config, error) {
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("peer client certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(rootPEM)) {
		return nil, fmt.Errorf("peer root certificate: no PEM certificate")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}
