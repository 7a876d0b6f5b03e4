package source

import (
	"context"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestRolesFor(t *testing.T) {
	rb := func(ns, name, kind, ref string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			RoleRef: rbacv1.RoleRef{Kind: kind, Name: ref}, Subjects: subjects}
	}
	crb := func(name, ref string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: ref}, Subjects: subjects}
	}
	user := func(n string) rbacv1.Subject { return rbacv1.Subject{Kind: rbacv1.UserKind, Name: n} }
	group := func(n string) rbacv1.Subject { return rbacv1.Subject{Kind: rbacv1.GroupKind, Name: n} }
	sa := func(ns, n string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: n}
	}
	kube := fake.NewClientset(
		rb("team-a", "dev", "Role", "deployer", user("alice")),
		rb("team-a", "view", "ClusterRole", "view", group("devs")),
		rb("team-b", "ci", "Role", "ci", sa("", "builder")), // namespace defaults to the binding's
		rb("team-b", "other", "Role", "other", user("bob")),
		crb("admins", "cluster-admin", group("platform")),
		crb("ci-global", "ci-global", sa("team-b", "builder")),
		crb("again", "view", user("alice")), // view also bound through team-a/view: listed once
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := WatchRoles(ctx, kube)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user                string
		groups              []string
		roles, clusterRoles []string
	}{
		{"alice", []string{"devs"}, []string{"team-a:deployer"}, []string{"view"}},
		{"carol", []string{"devs", "platform"}, nil, []string{"cluster-admin", "view"}},
		{"system:serviceaccount:team-b:builder", nil, []string{"team-b:ci"}, []string{"ci-global"}},
		{"system:serviceaccount:team-a:builder", nil, nil, nil},
		{"builder", nil, nil, nil}, // a User named like the service account is not it
		{"nobody", []string{"system:authenticated"}, nil, nil},
	} {
		roles, clusterRoles := r.For(c.user, c.groups)
		slices.Sort(roles)
		slices.Sort(clusterRoles)
		if !slices.Equal(roles, c.roles) || !slices.Equal(clusterRoles, c.clusterRoles) {
			t.Errorf("For(%s, %v) = %v, %v; want %v, %v", c.user, c.groups, roles, clusterRoles, c.roles, c.clusterRoles)
		}
	}
}
