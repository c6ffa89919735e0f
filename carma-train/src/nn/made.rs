//! MADE masks from a causal graph (docs/MATH.md section 4, causal flow; construction of zuko's `MaskedMLP`,
//! `reference/FLOW_MATH.md` section 7), so that outputs `2i` and `2i + 1` depend on the parents of
//! feature `i` only.

use ndarray::Array2;

/// The distinct rows of the output adjacency `repeat_interleave(A, 2)`, sorted lexicographically
/// (false < true, column 0 first, as `torch.unique` sorts), and for each output its row.
fn unique_parent_sets(parents: &[Vec<usize>]) -> (Vec<Vec<bool>>, Vec<usize>) {
    let d = parents.len();
    let rows: Vec<Vec<bool>> = parents
        .iter()
        .map(|p| (0..d).map(|j| p.contains(&j)).collect())
        .collect();
    let mut unique = rows.clone();
    unique.sort();
    unique.dedup();
    let inverse = (0..2 * d)
        .map(|o| unique.binary_search(&rows[o / 2]).expect("row is present"))
        .collect();
    (unique, inverse)
}

/// Number of distinct non-empty parent sets: the narrowest hidden layer for which every parent
/// set gets at least one hidden unit.
pub fn made_min_hidden(parents: &[Vec<usize>]) -> usize {
    unique_parent_sets(parents)
        .0
        .iter()
        .filter(|r| r.iter().any(|&b| b))
        .count()
}

fn to_f64(rows: impl Iterator<Item = Vec<bool>>, cols: usize) -> Array2<f64> {
    let data: Vec<f64> = rows
        .flat_map(|r| r.into_iter().map(|b| f64::from(u8::from(b))))
        .collect();
    let n = data.len() / cols.max(1);
    Array2::from_shape_vec((n, cols), data).expect("rectangular")
}

/// 0/1 masks `[out][in]` for a hyper-network `D -> hidden... -> 2D`.
///
/// `parents[i]` lists the parents of feature `i` (indices `< D`, the caller validates them).
/// Hidden units are assigned to the distinct non-empty parent sets cyclically (unit `k` of a layer
/// gets the `k mod r`-th reachable set, sets in `torch.unique` order); a unit may read an input
/// (or a previous unit) whose set is contained in its own; output `2i, 2i + 1` reads the units
/// whose set is contained in `parents[i]`. With every hidden width at least
/// [`made_min_hidden`], every parent of `i` reaches outputs `2i, 2i + 1`. If no feature has a
/// parent, every mask is zero (each feature gets a constant shift and scale).
pub fn made_masks(parents: &[Vec<usize>], hidden: &[usize]) -> Vec<Array2<f64>> {
    let d = parents.len();
    let (unique, inverse) = unique_parent_sets(parents);
    // subset[a][b]: parent set b is contained in parent set a (and b is non-empty).
    let nonempty: Vec<bool> = unique.iter().map(|r| r.iter().any(|&b| b)).collect();
    let subset = |a: usize, b: usize| nonempty[b] && (0..d).all(|j| !unique[b][j] || unique[a][j]);

    let mut masks = Vec::with_capacity(hidden.len() + 1);
    // `assigned[k]`: the unique-set index of unit k of the previous hidden layer.
    let mut assigned: Option<Vec<usize>> = None;
    for &width in hidden {
        // A set is reachable when some input (first layer) or previous unit may feed it.
        let reachable: Vec<usize> = (0..unique.len())
            .filter(|&a| match &assigned {
                None => nonempty[a],
                Some(prev) => prev.iter().any(|&b| subset(a, b)),
            })
            .collect();
        let idx: Vec<Option<usize>> = (0..width)
            .map(|k| (!reachable.is_empty()).then(|| reachable[k % reachable.len()]))
            .collect();
        let rows = idx.iter().map(|a| match (a, &assigned) {
            (None, None) => vec![false; d],
            (None, Some(prev)) => vec![false; prev.len()],
            (Some(a), None) => unique[*a].clone(),
            (Some(a), Some(prev)) => prev.iter().map(|&b| subset(*a, b)).collect(),
        });
        let cols = assigned.as_ref().map_or(d, Vec::len);
        masks.push(to_f64(rows, cols));
        // Units with no reachable set (only when no feature has parents) read nothing; give them
        // an index that no output accepts by marking them with the empty set if present.
        let fallback = nonempty.iter().position(|&n| !n).unwrap_or(0);
        assigned = Some(idx.into_iter().map(|a| a.unwrap_or(fallback)).collect());
    }
    let rows = inverse.iter().map(|&a| match &assigned {
        None => unique[a].clone(),
        Some(prev) => prev.iter().map(|&b| subset(a, b)).collect(),
    });
    let cols = assigned.as_ref().map_or(d, Vec::len);
    masks.push(to_f64(rows, cols));
    masks
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn loan_parents() -> Vec<Vec<usize>> {
        vec![
            vec![],
            vec![],
            vec![0, 1],
            vec![0, 1],
            vec![0, 1, 3],
            vec![0, 1, 2],
            vec![5],
        ]
    }

    /// `reach[o][j]`: is there a path from input `j` to output `o` through the masks?
    fn reach(masks: &[Array2<f64>]) -> Array2<f64> {
        let mut r = masks[0].clone();
        for m in &masks[1..] {
            r = m.dot(&r);
        }
        r.mapv(|v| f64::from(u8::from(v > 0.0)))
    }

    fn assert_exact_connectivity(parents: &[Vec<usize>], hidden: &[usize]) {
        let masks = made_masks(parents, hidden);
        let r = reach(&masks);
        for o in 0..2 * parents.len() {
            for j in 0..parents.len() {
                let want = parents[o / 2].contains(&j);
                assert_eq!(
                    r[[o, j]] > 0.0,
                    want,
                    "output {o}, input {j}, hidden {hidden:?}"
                );
            }
        }
    }

    #[test]
    fn outputs_see_exactly_their_parents() {
        let triangle = vec![vec![], vec![0], vec![1], vec![0, 1, 2]];
        assert_exact_connectivity(&triangle, &[32]);
        assert_exact_connectivity(&loan_parents(), &[64]);
        assert_exact_connectivity(&loan_parents(), &[5, 5]);
        assert_exact_connectivity(&loan_parents(), &[32, 32, 32]);
        assert_eq!(made_min_hidden(&loan_parents()), 4);
    }

    #[test]
    fn graph_without_edges_gives_zero_masks() {
        let masks = made_masks(&[vec![], vec![]], &[3]);
        assert!(masks.iter().all(|m| m.iter().all(|&v| v == 0.0)));
        assert_eq!(masks[1].dim(), (4, 3));
    }

    fn reference_masks(file: &str) -> (Vec<Vec<usize>>, usize, Array2<f64>, Array2<f64>) {
        let path = format!(
            "{}/../fixtures/reference/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).expect("reference fixture");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let adj = v["causal_adjacency"]["matrix"].as_array().unwrap();
        let parents = adj
            .iter()
            .map(|row| {
                let row = row.as_array().unwrap();
                (0..row.len())
                    .filter(|&j| row[j].as_u64() == Some(1))
                    .collect()
            })
            .collect();
        let mat = |key: &str| {
            let rows = v[key]["data"].as_array().unwrap();
            let data: Vec<f64> = rows
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
                .collect();
            Array2::from_shape_vec((rows.len(), data.len() / rows.len()), data).unwrap()
        };
        let m1 = mat("M1");
        (parents, m1.nrows(), m1, mat("M2"))
    }

    #[test]
    fn masks_equal_the_reference_checkpoints() {
        for file in ["loan_flow.json", "trianglesens_linear_flow.json"] {
            let (parents, h, m1, m2) = reference_masks(file);
            let masks = made_masks(&parents, &[h]);
            assert_eq!(masks[0], m1, "{file} M1");
            assert_eq!(masks[1], m2, "{file} M2");
        }
    }
}
