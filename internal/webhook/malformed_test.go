package webhook

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMalformedRequestEchoesUID (found by FuzzAdmissionReview): a review whose request does not
// decode (here request.kind is a string) is denied, and the denial names the request's UID when
// it can be read, so that the API server shows vouch's reason instead of a UID mismatch that its
// failurePolicy — Ignore included — would decide.
func TestMalformedRequestEchoesUID(t *testing.T) {
	t.Parallel()
	h := testServer(t, true).Handler()
	for _, tc := range []struct {
		body, uid string
	}{
		{`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":""}}`, "u1"},
		{`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u2","object":7,"operation":["CREATE"]}}`, "u2"},
		{`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":3,"kind":""}}`, ""},
		{`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{`, ""},
	} {
		req := httptest.NewRequest(http.MethodPost, "/validate", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var out struct {
			Response struct {
				UID     string `json:"uid"`
				Allowed bool   `json:"allowed"`
				Status  struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"status"`
			} `json:"response"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		r := out.Response
		if r.UID != tc.uid || r.Allowed || r.Status.Code != http.StatusBadRequest || !strings.HasPrefix(r.Status.Message, "decoding the AdmissionReview: ") {
			t.Errorf("%s: answered %s, want a 400 denial with uid %q", tc.body, rec.Body, tc.uid)
		}
	}
}
