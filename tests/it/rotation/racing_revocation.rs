//! A revocation of a user's keys that races rotations of those keys leaves
//! the user no live key: a successor made while the revocation ran (its
//! old key listed but not deleted yet) is revoked too.

use std::time::Duration;

use keygate::keyring::{Revocation, Ttl};
use keygate::keys::{KeyId, Scope};

use crate::leaks::fleet;
use crate::support::gateway::test_actor;

#[tokio::test]
async fn a_users_revocation_racing_rotations_leaves_no_live_successor() {
    let f = fleet(1, "revoke-race", |_| {}).await;
    let gw = &f.gateways[0];
    for round in 0..5 {
        let user = format!("racer{round}");
        let mut ids = Vec::new();
        for _ in 0..150 {
            let (_, id) = gw
                .key_with(&user, Ttl::For(Duration::from_secs(3600)), Scope::Full)
                .await;
            ids.push(KeyId::parse(&id).unwrap());
        }
        // Every key rotated at once (a fleet of cron jobs, or one holder
        // of a stolen key), while an admin revokes the user.
        let rotations: Vec<_> = ids
            .iter()
            .map(|&id| {
                let k = gw.keyring.clone();
                tokio::spawn(async move {
                    k.rotate(
                        &test_actor(),
                        id,
                        Some(Duration::from_secs(3600)),
                        Ttl::Default,
                    )
                    .await
                    .is_ok()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(5)).await;
        gw.keyring
            .revoke(&test_actor(), Revocation::Users(vec![user.clone()]))
            .await
            .unwrap();
        let mut rotated = 0;
        for r in rotations {
            rotated += usize::from(r.await.unwrap());
        }
        let live = gw.keyring.list(Some(&user)).await.unwrap();
        assert!(
            live.is_empty(),
            "round {round}: {} of {user}'s keys live after the revocation ({rotated} rotated): {:?}",
            live.len(),
            live.iter().take(3).map(|r| (r.id, r.rotated_from)).collect::<Vec<_>>()
        );
    }
}
