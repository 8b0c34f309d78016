// Package widget serves the Hissuno widget loader, widget.js: the small,
// dependency-free script a customer's site embeds with
// <script src="https://INGRESS/widget.js"></script> and Hissuno.init({…}).
//
// The loader asks the ingress whether it may connect (POST
// /v1/widget/connect, DESIGN.md "Public contract"), renders a minimal widget
// on accept, and on a refusal does not render and logs a console warning
// naming the reason. It fetches fresh tokens from the site's token endpoint
// when one expires or a rotation retired its key, and before exp (the docs'
// "Token Refresh"). It never logs, shows or exposes a token.
//
// This package only serves the file; it decides nothing and holds no
// secret.
package widget

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

// Path is where the ingress serves the loader.
const Path = "/widget.js"

// CacheControl is how long browsers and CDNs keep the loader: short, so
// that a fix reaches every site within minutes; the ETag makes the
// revalidation cheap.
const CacheControl = "public, max-age=300"

//go:embed widget.js
var source []byte

// etag is the loader's strong validator: a prefix of its SHA-256.
var etag = func() string {
	sum := sha256.Sum256(source)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}()

// Source is the loader's JavaScript.
func Source() []byte { return bytes.Clone(source) }

// Handler serves the loader on GET and HEAD. Any site may load it (it is
// public and cross-origin by design): it answers with
// Access-Control-Allow-Origin *, a cross-origin resource policy, nosniff,
// a short Cache-Control and an ETag honoured by If-None-Match.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "use GET "+Path, http.StatusMethodNotAllowed)
		return
	}
	h.Set("Content-Type", "application/javascript; charset=utf-8")
	h.Set("Cache-Control", CacheControl)
	h.Set("ETag", etag)
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, Path, time.Time{}, bytes.NewReader(source))
}
