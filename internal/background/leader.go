package background

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaseName is the Lease (coordination.k8s.io) the replicas of vouch serve hold to choose the
// one that runs background scans.
const LeaseName = "vouch-background-scan"

// Defaults of Election.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Election chooses, among the replicas, the one that scans: a Lease in Namespace, held by
// Identity. The durations are client-go's leader election's; zero means the defaults above.
type Election struct {
	Client        kubernetes.Interface
	Namespace     string
	Identity      string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	Logger        *slog.Logger
}

// Run calls lead with a context that ends when this replica stops leading, each time it is
// elected, until ctx ends; the Lease is released when ctx ends. Admission never waits for it.
func (e Election) Run(ctx context.Context, lead func(ctx context.Context)) error {
	if e.Client == nil || e.Namespace == "" || e.Identity == "" {
		return errors.New("background: leader election needs a client, a namespace and an identity")
	}
	log := e.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg := leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: LeaseName, Namespace: e.Namespace},
			Client:     e.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
		},
		LeaseDuration:   cmp.Or(e.LeaseDuration, DefaultLeaseDuration),
		RenewDeadline:   cmp.Or(e.RenewDeadline, DefaultRenewDeadline),
		RetryPeriod:     cmp.Or(e.RetryPeriod, DefaultRetryPeriod),
		ReleaseOnCancel: true,
		Name:            LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("background scans: leading", "identity", e.Identity)
				lead(ctx)
			},
			OnStoppedLeading: func() { log.Info("background scans: not leading", "identity", e.Identity) },
		},
	}
	le, err := leaderelection.NewLeaderElector(cfg)
	if err != nil {
		return err
	}
	// Run returns when leadership is lost; stand again until ctx ends.
	for ctx.Err() == nil {
		le.Run(ctx)
	}
	return nil
}
