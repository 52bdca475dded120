//! The `Describe` RPC: every peer's view of the ring, asked over gRPC, agrees with the routing
//! the cluster actually used (which peer loaded each key).

use groupcache::{ErrorKind, GroupcachePeer};
use groupcache_tests::{GROUP, TestCluster, within_limit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_agrees_with_the_routing_actually_used() {
    within_limit(async {
        let cluster = TestCluster::start(3).await;
        let members: Vec<GroupcachePeer> = {
            let mut m: Vec<_> = (0..3)
                .map(|i| GroupcachePeer::new(cluster.addr(i)))
                .collect();
            m.sort();
            m
        };
        for i in 0..40 {
            let key = format!("key-{i}");
            cluster.node(0).get(&key).await.unwrap();
            let loaded_by: Vec<usize> = (0..3)
                .filter(|&n| cluster.loader.loads_on(n, &key) == 1)
                .collect();
            assert_eq!(loaded_by.len(), 1, "{key} loaded once");
            let owner = GroupcachePeer::new(cluster.addr(loaded_by[0]));
            for peer in &members {
                let view = cluster
                    .peer_set(0)
                    .describe_peer(peer, Some(&key))
                    .await
                    .unwrap();
                assert_eq!(view.owner.as_ref(), Some(&owner), "{peer}'s view of {key}");
            }
        }
        for (i, peer) in members.iter().enumerate() {
            let view = cluster.peer_set(1).describe_peer(peer, None).await.unwrap();
            assert_eq!(&view.me, peer, "peer {i}");
            assert_eq!(view.peers, members);
            assert_eq!(view.virtual_nodes, groupcache::defaults::VIRTUAL_NODES);
            assert_eq!(view.owner, None);
        }
        // The remote view carries the peer's own counters: its peer set's and its group's.
        let remote = cluster
            .peer_set(0)
            .describe_peer(&GroupcachePeer::new(cluster.addr(2)), None)
            .await
            .unwrap();
        let local = cluster.peer_set(2).describe(None);
        let (remote_group, local_group) = (
            remote
                .stats
                .group(GROUP)
                .expect("the remote view lists the group"),
            local
                .stats
                .group(GROUP)
                .expect("the local view lists the group"),
        );
        assert_eq!(remote_group.local_loads, local_group.local_loads);
        assert_eq!(remote_group.server_requests, local_group.server_requests);
        assert!(remote_group.local_loads > 0);
        assert_eq!(
            remote.stats.groups.keys().collect::<Vec<_>>(),
            [GROUP],
            "one group hosted"
        );

        // Only members can be asked.
        let stranger = GroupcachePeer::new("127.0.0.1:1".parse().unwrap());
        let err = cluster
            .peer_set(0)
            .describe_peer(&stranger, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotAMember, "{err}");
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_serialises_to_json() {
    within_limit(async {
        let cluster = TestCluster::start(2).await;
        let view = cluster.peer_set(0).describe(Some("k"));
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["me"], cluster.addr(0).to_string());
        assert_eq!(json["peers"].as_array().unwrap().len(), 2);
        assert!(json["stats"]["groups"][GROUP]["gets"].is_u64());
        assert!(json["stats"]["unknown_group_requests"].is_u64());
        assert!(json["owner"].is_string());
        cluster.shutdown().await;
    })
    .await;
}
