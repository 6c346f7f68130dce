package admin

import (
	"net/http"
	"net/url"

	"sessiond"
	"sessiond/internal/httpx"
)

// apiKeyType is the JSON:API type of API keys.
const apiKeyType = "apikeys"

// apiKeyAttributes are the attributes of an API key. Secret is set only in
// the answer to its creation: it is shown this once and stored hashed.
type apiKeyAttributes struct {
	Name    string     `json:"name"`
	Secret  string     `json:"secret,omitempty"`
	Created httpx.Time `json:"created"`
}

func apiKeyPath(id string) string { return "/apikeys/" + url.PathEscape(id) }

func apiKeyResource(r *http.Request, k *sessiond.APIKey, secret string) *resource {
	return &resource{
		ID:         k.ID,
		Type:       apiKeyType,
		Attributes: apiKeyAttributes{Name: k.Name, Secret: secret, Created: httpx.Time(k.Created)},
		Links:      &links{Self: selfURL(r, apiKeyPath(k.ID))},
	}
}

// listAPIKeys answers GET /v1/apikeys: every key, oldest first, without
// secrets.
func (s *server) listAPIKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.svc.ListAPIKeys(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	data := make([]*resource, 0, len(keys))
	for _, k := range keys {
		data = append(data, apiKeyResource(r, k, ""))
	}
	writeDoc(w, r, http.StatusOK, &document{
		Links: &links{Self: selfURL(r, "/apikeys")},
		Data:  data,
		Meta:  map[string]any{"total": len(data)},
	})
}

// createAPIKey answers POST /v1/apikeys with the new key and its secret.
// The body, optional, is {"data": {"type": "apikeys", "attributes":
// {"name": "..."}}}.
func (s *server) createAPIKey(w http.ResponseWriter, r *http.Request) {
	in, err := s.decodeResource(r, apiKeyType)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := in.allow("name"); err != nil {
		writeError(w, r, err)
		return
	}
	name, err := in.string("name")
	if err != nil {
		writeError(w, r, err)
		return
	}
	k, secret, err := s.svc.CreateAPIKey(r.Context(), name)
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.Logger(r.Context()).Info("API key created", "api_key_id", k.ID, "name", k.Name)
	res := apiKeyResource(r, k, secret)
	w.Header().Set("Location", res.Links.Self)
	writeDoc(w, r, http.StatusCreated, &document{Links: &links{Self: res.Links.Self}, Data: res})
}

// getAPIKey answers GET /v1/apikeys/{id}, without the secret.
func (s *server) getAPIKey(w http.ResponseWriter, r *http.Request) {
	k, err := s.svc.GetAPIKey(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	res := apiKeyResource(r, k, "")
	writeDoc(w, r, http.StatusOK, &document{Links: &links{Self: res.Links.Self}, Data: res})
}

// revokeAPIKey answers DELETE /v1/apikeys/{id}: the key's secret and every
// token it issued stop working at once, and its sessions are closed.
func (s *server) revokeAPIKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.svc.RevokeAPIKey(r.Context(), id); err != nil {
		writeError(w, r, err)
		return
	}
	httpx.Logger(r.Context()).Info("API key revoked", "api_key_id", id)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
