//! The relations graph: entities are the subjects and objects of the
//! facts that hold now, edges the facts themselves (read both ways). A
//! neighbourhood is every edge within a few steps of an entity; a path the
//! fewest edges between two, found breadth first a step at a time (one
//! read per step, from whichever end has the smaller frontier).

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    domain::MemoryError,
    facts::{self, Fact, key},
};

/// Most edges one step reads (a hub entity is cut there).
const STEP_EDGES: usize = 2_000;
/// Most entities a path search visits before it gives up.
const MAX_VISITED: usize = 20_000;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Neighbourhood {
    /// The entities reached, as first written, the asked one first.
    pub entities: Vec<String>,
    /// The facts between them.
    pub edges: Vec<Fact>,
    /// Whether a step had more edges than were read.
    pub truncated: bool,
}

/// The facts within `depth` steps of `entity` in `scope`.
pub async fn neighbourhood(
    db: &daarion_store::Db,
    scope: &str,
    entity: &str,
    depth: usize,
) -> Result<Neighbourhood, MemoryError> {
    let mut seen: HashSet<String> = HashSet::from([key(entity)]);
    let mut entities = vec![entity.trim().to_owned()];
    let mut frontier = vec![key(entity)];
    let mut edges: Vec<Fact> = Vec::new();
    let mut edge_ids = HashSet::new();
    let mut truncated = false;
    for _ in 0..depth {
        if frontier.is_empty() {
            break;
        }
        let step = facts::touching(db, scope, &frontier, STEP_EDGES + 1).await?;
        truncated |= step.len() > STEP_EDGES;
        let mut next = Vec::new();
        for (fact, subject, object) in step.into_iter().take(STEP_EDGES) {
            for (entity_key, name) in [(subject, &fact.subject), (object, &fact.object)] {
                if seen.insert(entity_key.clone()) {
                    entities.push(name.clone());
                    next.push(entity_key);
                }
            }
            if edge_ids.insert(fact.id.clone()) {
                edges.push(fact);
            }
        }
        frontier = next;
    }
    Ok(Neighbourhood {
        entities,
        edges,
        truncated,
    })
}

/// The fewest facts linking `from` to `to` in `scope` (either way along
/// each), at most `max_depth` of them, in order from `from`; `None` when
/// there is no such path.
pub async fn path(
    db: &daarion_store::Db,
    scope: &str,
    (from, to): (&str, &str),
    max_depth: usize,
) -> Result<Option<Vec<Fact>>, MemoryError> {
    let (from, to) = (key(from), key(to));
    if from == to {
        return Ok(Some(Vec::new()));
    }
    // How each side reached an entity: (the entity it came from, the fact).
    let mut sides: [HashMap<String, Option<(String, Fact)>>; 2] = [
        HashMap::from([(from.clone(), None)]),
        HashMap::from([(to.clone(), None)]),
    ];
    let mut frontiers = [vec![from], vec![to]];
    for _ in 0..max_depth {
        let side = usize::from(frontiers[1].len() < frontiers[0].len());
        if frontiers[side].is_empty() || sides[0].len() + sides[1].len() > MAX_VISITED {
            return Ok(None);
        }
        let step = facts::touching(db, scope, &frontiers[side], STEP_EDGES).await?;
        let frontier: HashSet<&String> = frontiers[side].iter().collect();
        let mut next = Vec::new();
        for (fact, subject, object) in step {
            for (here, there) in [(&subject, &object), (&object, &subject)] {
                if !frontier.contains(here) || sides[side].contains_key(there) {
                    continue;
                }
                sides[side].insert(there.clone(), Some((here.clone(), fact.clone())));
                if sides[1 - side].contains_key(there) {
                    return Ok(Some(join(&sides, there)));
                }
                next.push(there.clone());
            }
        }
        frontiers[side] = next;
    }
    Ok(None)
}

/// The path through `meeting`: back to `from` on side 0, on to `to` on
/// side 1.
fn join(sides: &[HashMap<String, Option<(String, Fact)>>; 2], meeting: &str) -> Vec<Fact> {
    let walk = |side: &HashMap<String, Option<(String, Fact)>>| {
        let mut edges = Vec::new();
        let mut at = meeting.to_owned();
        while let Some(Some((previous, fact))) = side.get(&at) {
            edges.push(fact.clone());
            at = previous.clone();
        }
        edges
    };
    let mut path = walk(&sides[0]);
    path.reverse();
    path.extend(walk(&sides[1]));
    path
}
