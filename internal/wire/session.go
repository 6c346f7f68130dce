// Package wire holds the JSON documents that more than one API dialect
// speaks. Each dialect's own documents live in its own package.
package wire

import (
	"encoding/json"
	"time"

	"sessiond"
	"sessiond/internal/httpx"
)

// SessionV1 is the session document of the Pip.Services protocol (SPEC
// section 3), also returned by the JSON-RPC Session API. Null times are
// JSON null; user and data are any JSON value.
type SessionV1 struct {
	ID          string          `json:"id"`
	UserID      string          `json:"user_id"`
	UserName    string          `json:"user_name"`
	Active      bool            `json:"active"`
	OpenTime    httpx.Time      `json:"open_time"`
	RequestTime httpx.Time      `json:"request_time"`
	CloseTime   httpx.Time      `json:"close_time"`
	ExpireTime  httpx.Time      `json:"expire_time"`
	Address     string          `json:"address"`
	Client      string          `json:"client"`
	User        json.RawMessage `json:"user"`
	Data        json.RawMessage `json:"data"`
	APIKeyID    string          `json:"api_key_id,omitempty"`
}

var null = json.RawMessage("null")

// NewSessionV1 converts a session to its wire form.
func NewSessionV1(s *sessiond.Session) *SessionV1 {
	v := &SessionV1{
		ID:          s.ID,
		UserID:      s.UserID,
		UserName:    s.UserName,
		Active:      s.Active,
		OpenTime:    httpx.Time(s.OpenTime),
		RequestTime: httpx.Time(s.RequestTime),
		CloseTime:   httpx.Time(s.CloseTime),
		ExpireTime:  httpx.Time(s.ExpireTime),
		Address:     s.Address,
		Client:      s.Client,
		User:        s.User,
		Data:        s.Data,
		APIKeyID:    s.APIKeyID,
	}
	if v.User == nil {
		v.User = null
	}
	if v.Data == nil {
		v.Data = null
	}
	return v
}

// Seconds returns d in whole seconds, for expires_in fields.
func Seconds(d time.Duration) int64 { return int64(d / time.Second) }
