import type { ClusterFigures, MetricSample } from '../gateway/dashboard-figures.js';
import type { ClusterView } from '../gateway/dashboard-feed.js';
import type { LeaseKeeper } from './lease-keeper.js';
import type { MembershipView } from './membership.js';
import type { MetricsExchange } from './metrics-exchange.js';

/**
 * What the dashboard shows of a cluster (issue 12): the live nodes from membership and each partition's lease owner as
 * this node last saw the leases bucket, and every node's metrics for the cluster totals. Read on demand.
 */
export class LeaseOwnershipView implements ClusterView {
  constructor(
    private readonly membership: Pick<MembershipView, 'live'>,
    private readonly keeper: Pick<LeaseKeeper, 'leaseOwners'>,
    private readonly exchange?: Pick<MetricsExchange, 'gather'>,
  ) {}

  /** Every live node's metrics through the exchange (the cluster totals); none without an exchange. */
  gather(): Promise<Map<string, MetricSample[]>> {
    return this.exchange ? this.exchange.gather() : Promise.resolve(new Map());
  }

  figures(): ClusterFigures {
    return {
      nodes: [...this.membership.live()],
      partitions: this.keeper.leaseOwners().map(({ partition, owner, epoch }) => ({ partition, owner, epoch })),
    };
  }
}
