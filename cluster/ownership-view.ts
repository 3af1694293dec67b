import type { ClusterFigures } from '../gateway/dashboard-figures.js';
import type { ClusterView } from '../gateway/dashboard-feed.js';
import type { LeaseKeeper } from './lease-keeper.js';
import type { MembershipView } from './membership.js';

/**
 * What the dashboard shows of a cluster (issue 12): the live nodes from membership and each partition's lease owner as
 * this node last saw the leases bucket. Read on demand; holds no state of its own.
 */
export class LeaseOwnershipView implements ClusterView {
  constructor(
    private readonly membership: Pick<MembershipView, 'live'>,
    private readonly keeper: Pick<LeaseKeeper, 'leaseOwners'>,
  ) {}

  figures(): ClusterFigures {
    return {
      nodes: [...this.membership.live()],
      partitions: this.keeper.leaseOwners().map(({ partition, owner, epoch }) => ({ partition, owner, epoch })),
    };
  }
}
