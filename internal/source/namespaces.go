package source

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// Namespaces serves namespace labels for namespaceSelector from an informer.
type Namespaces struct {
	lister corelisters.NamespaceLister
}

// WatchNamespaces starts a namespace informer and waits for it to sync.
func WatchNamespaces(ctx context.Context, kube kubernetes.Interface) (*Namespaces, error) {
	factory := informers.NewSharedInformerFactory(kube, 10*time.Minute)
	lister := factory.Core().V1().Namespaces().Lister()
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil, fmt.Errorf("source: watching %v did not sync", typ)
		}
	}
	return &Namespaces{lister: lister}, nil
}

// Labels returns the labels of a namespace, nil when it is unknown.
func (n *Namespaces) Labels(name string) map[string]string {
	ns, err := n.lister.Get(name)
	if err != nil {
		return nil
	}
	return ns.Labels
}
