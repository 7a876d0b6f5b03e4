package webhook

import (
	"crypto/tls"
	"net"
	"net/http"
)

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func insecureClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}
