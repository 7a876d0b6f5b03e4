package source

import (
	"context"
	"fmt"
	"slices"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
)

// serviceAccountPrefix starts the username of a service account,
// system:serviceaccount:<namespace>:<name>.
const serviceAccountPrefix = "system:serviceaccount:"

// Roles finds the roles and cluster roles bound to an admission user, for the roles and
// clusterRoles criteria of match and exclude, from informers on RoleBindings and
// ClusterRoleBindings.
type Roles struct {
	roleBindings        rbaclisters.RoleBindingLister
	clusterRoleBindings rbaclisters.ClusterRoleBindingLister
}

// WatchRoles starts informers on RoleBindings and ClusterRoleBindings and returns once they
// have synced.
func WatchRoles(ctx context.Context, kube kubernetes.Interface) (*Roles, error) {
	factory := informers.NewSharedInformerFactory(kube, 10*time.Minute)
	r := &Roles{
		roleBindings:        factory.Rbac().V1().RoleBindings().Lister(),
		clusterRoleBindings: factory.Rbac().V1().ClusterRoleBindings().Lister(),
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil, fmt.Errorf("source: watching %v did not sync", typ)
		}
	}
	return r, nil
}

// For returns the roles ("namespace:name") and cluster roles bound to the user, as Kyverno
// computes them: a RoleBinding gives its Role (as namespace:name) or its ClusterRole; a
// ClusterRoleBinding gives its ClusterRole; a binding applies when one of its subjects is the
// user (User), one of the user's groups (Group) or the user as a service account
// (ServiceAccount, its namespace defaulting to the binding's).
func (r *Roles) For(username string, groups []string) (roles, clusterRoles []string) {
	rbs, _ := r.roleBindings.List(labels.Everything()) // listers read a local cache; no error
	for _, rb := range rbs {
		if !subjectsInclude(rb.Subjects, rb.Namespace, username, groups) {
			continue
		}
		switch rb.RoleRef.Kind {
		case "Role":
			roles = appendNew(roles, rb.Namespace+":"+rb.RoleRef.Name)
		case "ClusterRole":
			clusterRoles = appendNew(clusterRoles, rb.RoleRef.Name)
		}
	}
	crbs, _ := r.clusterRoleBindings.List(labels.Everything())
	for _, crb := range crbs {
		if crb.RoleRef.Kind == "ClusterRole" && subjectsInclude(crb.Subjects, "", username, groups) {
			clusterRoles = appendNew(clusterRoles, crb.RoleRef.Name)
		}
	}
	return roles, clusterRoles
}

func subjectsInclude(subjects []rbacv1.Subject, bindingNamespace, username string, groups []string) bool {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			if s.Name == username {
				return true
			}
		case rbacv1.GroupKind:
			if slices.Contains(groups, s.Name) {
				return true
			}
		case rbacv1.ServiceAccountKind:
			ns := s.Namespace
			if ns == "" {
				ns = bindingNamespace
			}
			if ns != "" && username == serviceAccountPrefix+ns+":"+s.Name {
				return true
			}
		}
	}
	return false
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
