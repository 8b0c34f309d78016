package events

import (
	"reflect"
	"testing"
)

func TestUnmarshal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    Attempt
		wantErr bool
	}{
		{name: "the schema's names", in: `{"schemaVersion":1,"attemptId":"att_1","projectId":"p","userId":"u","userMetadata":{"Plan":"pro"}}`,
			want: Attempt{SchemaVersion: 1, AttemptID: "att_1", ProjectID: "p", UserID: "u", UserMetadata: Metadata{"Plan": "pro"}}},
		{name: "other cases are unknown keys", in: `{"SchemaVersion":1,"ATTEMPTID":"att_1","projectid":"p","UserId":"u","USERMETADATA":{"a":"b"},"WidgetToken":"t"}`,
			want: Attempt{}},
		{name: "an escaped name is the name", in: `{"projectI\u0064":"p"}`, want: Attempt{ProjectID: "p"}},
		{name: "the exact name wins whatever the order", in: `{"projectId":"p","PROJECTID":"q"}`, want: Attempt{ProjectID: "p"}},
		{name: "data after the object", in: `{"projectId":"p"} {}`, wantErr: true},
		{name: "not JSON", in: `{"projectId":`, wantErr: true},
		{name: "a type error", in: `{"projectId":7}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got Attempt
			err := Unmarshal([]byte(tt.in), &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Unmarshal(%s): error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Unmarshal(%s) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}
