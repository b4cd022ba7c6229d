//! Every built-in CRDT type under one key each: writing a replica's contribution to all of them,
//! and reading all of them back for comparison.

use std::convert::Infallible;

use dd_core::Key;
use dd_core::crdt::{
    Flag, GCounter, GSet, LWWMap, LWWRegister, MVRegister, ORMap, ORMultiMap, ORSet, PNCounter,
    PNCounterMap, WallClock,
};
use dd_core::replicator::{ReadConsistency, Replicator, ReplicatorError, WriteConsistency};

use crate::error::HarnessError;

/// The keys of every type, under a common prefix.
#[derive(Debug, Clone)]
pub struct EveryTypeKeys {
    /// A `GCounter`.
    pub gcounter: Key<GCounter>,
    /// A `PNCounter`.
    pub pncounter: Key<PNCounter>,
    /// A `GSet<String>`.
    pub gset: Key<GSet<String>>,
    /// An `ORSet<String>`.
    pub orset: Key<ORSet<String>>,
    /// A `Flag`.
    pub flag: Key<Flag>,
    /// An `LWWRegister<String>`.
    pub lww_register: Key<LWWRegister<String>>,
    /// An `MVRegister<String>`.
    pub mv_register: Key<MVRegister<String>>,
    /// An `ORMap<String, ORSet<String>>`.
    pub ormap: Key<ORMap<String, ORSet<String>>>,
    /// An `LWWMap<String, String>`.
    pub lww_map: Key<LWWMap<String, String>>,
    /// A `PNCounterMap<String>`.
    pub pncounter_map: Key<PNCounterMap<String>>,
    /// An `ORMultiMap<String, String>`.
    pub ormultimap: Key<ORMultiMap<String, String>>,
}

/// The values of every type, as read from one replica. Equality compares the replicated states.
#[derive(Debug, Clone, PartialEq)]
pub struct EveryType {
    /// The `GCounter`.
    pub gcounter: GCounter,
    /// The `PNCounter`.
    pub pncounter: PNCounter,
    /// The `GSet<String>`.
    pub gset: GSet<String>,
    /// The `ORSet<String>`.
    pub orset: ORSet<String>,
    /// The `Flag`.
    pub flag: Flag,
    /// The `LWWRegister<String>`.
    pub lww_register: LWWRegister<String>,
    /// The `MVRegister<String>`.
    pub mv_register: MVRegister<String>,
    /// The `ORMap<String, ORSet<String>>`.
    pub ormap: ORMap<String, ORSet<String>>,
    /// The `LWWMap<String, String>`.
    pub lww_map: LWWMap<String, String>,
    /// The `PNCounterMap<String>`.
    pub pncounter_map: PNCounterMap<String>,
    /// The `ORMultiMap<String, String>`.
    pub ormultimap: ORMultiMap<String, String>,
}

/// The number of keys [`EveryTypeKeys`] has.
pub const TYPE_COUNT: usize = 11;

const LOCAL: WriteConsistency = WriteConsistency::Local;

fn ok() -> Result<(), Infallible> {
    Ok(())
}

impl EveryTypeKeys {
    /// The keys `{prefix}gcounter`, `{prefix}pncounter`, ...
    pub fn new(prefix: &str) -> Self {
        let k = |name: &str| format!("{prefix}{name}");
        Self {
            gcounter: Key::new(k("gcounter")),
            pncounter: Key::new(k("pncounter")),
            gset: Key::new(k("gset")),
            orset: Key::new(k("orset")),
            flag: Key::new(k("flag")),
            lww_register: Key::new(k("lww-register")),
            mv_register: Key::new(k("mv-register")),
            ormap: Key::new(k("ormap")),
            lww_map: Key::new(k("lww-map")),
            pncounter_map: Key::new(k("pncounter-map")),
            ormultimap: Key::new(k("ormultimap")),
        }
    }

    /// The key ids.
    pub fn ids(&self) -> Vec<String> {
        [
            self.gcounter.id(),
            self.pncounter.id(),
            self.gset.id(),
            self.orset.id(),
            self.flag.id(),
            self.lww_register.id(),
            self.mv_register.id(),
            self.ormap.id(),
            self.lww_map.id(),
            self.pncounter_map.id(),
            self.ormultimap.id(),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect()
    }

    /// Writes `r`'s contribution to every key: additions and removals tagged with `tag`, so that
    /// several replicas (or rounds) writing concurrently produce a merge that involves every
    /// operation of every type (adds, removes, increments, decrements, overwrites).
    pub async fn write_contribution(&self, r: &Replicator, tag: &str) -> Result<(), HarnessError> {
        self.write(r, tag)
            .await
            .map_err(|e| HarnessError::replicator(r.self_id().replica().to_string(), e))
    }

    async fn write(&self, r: &Replicator, tag: &str) -> Result<(), ReplicatorError> {
        let me = r.self_id();
        let tag = tag.to_owned();
        let (n, t) = (me.clone(), tag.clone());
        r.update(&self.gcounter, GCounter::new(), LOCAL, move |c| {
            c.increment(&n, 3)
        })
        .await?;
        let n = me.clone();
        r.update(&self.pncounter, PNCounter::new(), LOCAL, move |c| {
            c.increment(&n, 5)?;
            c.decrement(&n, 2)
        })
        .await?;
        r.update(&self.gset, GSet::new(), LOCAL, move |s| {
            s.add(format!("{t}-g"));
            ok()
        })
        .await?;
        let (n, t) = (me.clone(), tag.clone());
        r.update(&self.orset, ORSet::new(), LOCAL, move |s| {
            s.add(&n, format!("{t}-kept"));
            s.add(&n, format!("{t}-removed"));
            s.remove(&n, &format!("{t}-removed"));
            ok()
        })
        .await?;
        r.update(&self.flag, Flag::new(), LOCAL, |f| {
            f.switch_on();
            ok()
        })
        .await?;
        let (n, t) = (me.clone(), tag.clone());
        let initial = LWWRegister::new(&me, String::new(), &WallClock);
        r.update(&self.lww_register, initial, LOCAL, move |reg| {
            reg.set(&n, format!("{t}-value"), &WallClock);
            ok()
        })
        .await?;
        let (n, t) = (me.clone(), tag.clone());
        r.update(&self.mv_register, MVRegister::new(), LOCAL, move |reg| {
            reg.set(&n, format!("{t}-value"));
            ok()
        })
        .await?;
        let (n, t) = (me.clone(), tag.clone());
        r.update(&self.ormap, ORMap::new(), LOCAL, move |m| {
            m.update(&n, format!("{t}-entry"), ORSet::new(), |s| {
                s.add(&n, "x".to_owned())
            });
            m.update(&n, "shared".to_owned(), ORSet::new(), |s| {
                s.add(&n, t.clone())
            });
            m.update(&n, format!("{t}-removed"), ORSet::new(), |s| {
                s.add(&n, "y".to_owned())
            });
            m.remove(&n, &format!("{t}-removed"));
            ok()
        })
        .await?;
        let (n, t) = (me.clone(), tag.clone());
        r.update(&self.lww_map, LWWMap::new(), LOCAL, move |m| {
            m.put(&n, t.clone(), format!("{t}-value"), &WallClock);
            m.put(&n, "shared".to_owned(), t.clone(), &WallClock);
            m.put(&n, format!("{t}-removed"), "z".to_owned(), &WallClock);
            m.remove(&n, &format!("{t}-removed"));
            ok()
        })
        .await?;
        let (n, t) = (me.clone(), tag.clone());
        r.update(&self.pncounter_map, PNCounterMap::new(), LOCAL, move |m| {
            m.increment(&n, "shared".to_owned(), 2)?;
            m.decrement(&n, t.clone(), 1)
        })
        .await?;
        let (n, t) = (me.clone(), tag.clone());
        r.update(&self.ormultimap, ORMultiMap::new(), LOCAL, move |m| {
            m.add_binding(&n, "shared".to_owned(), t.clone());
            m.put(&n, t.clone(), [format!("{t}-a"), format!("{t}-b")]);
            m.remove_binding(&n, &t, &format!("{t}-b"));
            ok()
        })
        .await?;
        Ok(())
    }

    /// Reads every key from `r` (locally).
    pub async fn read(&self, r: &Replicator) -> Result<EveryType, HarnessError> {
        self.read_inner(r)
            .await
            .map_err(|e| HarnessError::replicator(r.self_id().replica().to_string(), e))
    }

    async fn read_inner(&self, r: &Replicator) -> Result<EveryType, ReplicatorError> {
        const L: ReadConsistency = ReadConsistency::Local;
        Ok(EveryType {
            gcounter: r.get(&self.gcounter, L).await?,
            pncounter: r.get(&self.pncounter, L).await?,
            gset: r.get(&self.gset, L).await?,
            orset: r.get(&self.orset, L).await?,
            flag: r.get(&self.flag, L).await?,
            lww_register: r.get(&self.lww_register, L).await?,
            mv_register: r.get(&self.mv_register, L).await?,
            ormap: r.get(&self.ormap, L).await?,
            lww_map: r.get(&self.lww_map, L).await?,
            pncounter_map: r.get(&self.pncounter_map, L).await?,
            ormultimap: r.get(&self.ormultimap, L).await?,
        })
    }
}

impl EveryType {
    /// Checks that the values hold what [`EveryTypeKeys::write_contribution`] wrote for each of
    /// `tags` (once per tag), so that a comparison of two snapshots never passes on two equally
    /// empty values. Returns the first difference.
    pub fn check_contributions(&self, tags: &[&str]) -> Result<(), String> {
        let n = tags.len();
        let expect = |cond: bool, what: String| if cond { Ok(()) } else { Err(what) };
        expect(
            self.gcounter.value() == 3 * n as u128,
            format!("gcounter {:?}", self.gcounter),
        )?;
        expect(
            self.pncounter.value() == 3 * n as i128,
            format!("pncounter {:?}", self.pncounter),
        )?;
        expect(self.flag.enabled(), "flag is off".to_owned())?;
        for t in tags {
            expect(
                self.gset.contains(&format!("{t}-g")),
                format!("gset lacks {t}"),
            )?;
            expect(
                self.orset.contains(&format!("{t}-kept"))
                    && !self.orset.contains(&format!("{t}-removed")),
                format!("orset {:?}", self.orset.elements()),
            )?;
            let entry = self.ormap.get(&format!("{t}-entry"));
            expect(
                entry.is_some_and(|s| s.contains(&"x".to_owned()))
                    && !self.ormap.contains_key(&format!("{t}-removed"))
                    && self
                        .ormap
                        .get(&"shared".to_owned())
                        .is_some_and(|s| s.contains(&t.to_string())),
                format!("ormap {:?}", self.ormap.entries()),
            )?;
            expect(
                self.lww_map.get(&t.to_string()) == Some(format!("{t}-value"))
                    && !self.lww_map.contains_key(&format!("{t}-removed")),
                format!("lww-map {:?}", self.lww_map.entries()),
            )?;
            expect(
                self.pncounter_map.get(&t.to_string()) == Some(-1),
                format!("pncounter-map {:?}", self.pncounter_map.entries()),
            )?;
            expect(
                self.ormultimap.get(&t.to_string()) == Some([format!("{t}-a")].into())
                    && self
                        .ormultimap
                        .contains_binding(&"shared".to_owned(), &t.to_string()),
                format!("ormultimap {:?}", self.ormultimap.entries()),
            )?;
        }
        expect(
            self.pncounter_map.get(&"shared".to_owned()) == Some(2 * n as i128),
            format!("pncounter-map {:?}", self.pncounter_map.entries()),
        )?;
        // Concurrent writes of a multi-value register are all kept, sequential ones replaced.
        let written: std::collections::BTreeSet<String> =
            tags.iter().map(|t| format!("{t}-value")).collect();
        let mv = self.mv_register.values();
        expect(
            !mv.is_empty() && mv.is_subset(&written),
            format!("mv-register {mv:?}"),
        )?;
        expect(
            tags.iter()
                .any(|t| *self.lww_register.value() == format!("{t}-value")),
            format!("lww-register {:?}", self.lww_register.value()),
        )?;
        Ok(())
    }
}
