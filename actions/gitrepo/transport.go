package gitrepo

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// ErrRedirect is returned when a remote redirects to another host or
// scheme: the sandbox only talks to the hosts firebreak.cue declares.
var ErrRedirect = errors.New("redirect to another host refused")

// installTransport puts an HTTP client that follows redirects only within
// the remote's own scheme and host under go-git's http and https protocols.
// go-git keeps its transports in a process-wide table; gitrepo is the only
// user of go-git in firebreak, so the table is its to set.
var installTransport = sync.OnceFunc(func() {
	t := githttp.NewClientWithOptions(
		&http.Client{Transport: http.DefaultTransport, CheckRedirect: sameOrigin},
		&githttp.ClientOptions{RedirectPolicy: githttp.FollowInitialRedirects},
	)
	client.InstallProtocol("http", t)
	client.InstallProtocol("https", t)
})

func sameOrigin(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if !strings.EqualFold(req.URL.Scheme, first.Scheme) || !strings.EqualFold(req.URL.Host, first.Host) {
		return fmt.Errorf("%w: %s://%s to %s://%s", ErrRedirect, first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
	}
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	return nil
}
