//! dive model unit tests: the definitions and quirks of `efficiency.go`, by hand.

use super::*;

fn e(path: &str, size: i64, is_dir: bool) -> DiveEntry {
    DiveEntry { path: path.into(), size, is_dir, info: None }
}

fn figures(layers: Vec<Vec<DiveEntry>>) -> DiveFigures {
    let mut m = DiveModel::new(false);
    for l in layers {
        let size = l.iter().map(|e| e.size as u64).sum();
        m.push_layer(l, size);
    }
    m.figures()
}

#[test]
fn nothing_wasted_is_efficiency_one() {
    let f = figures(vec![vec![e("a", 10, false)], vec![e("b", 5, false)]]);
    assert_eq!(f.efficiency, 1.0);
    assert_eq!(f.wasted_bytes, 0);
    assert_eq!((f.size_bytes, f.user_size_bytes), (15, 5));
    assert_eq!(f.user_wasted_percent, 0.0);
    assert_eq!(figures(vec![]).efficiency, 1.0);
}

#[test]
fn overwrite_counts_every_copy() {
    let f = figures(vec![vec![e("a", 10, false), e("b", 1, false)], vec![e("a", 4, false)]]);
    // min: a=4, b=1; all: a=14, b=1.
    assert_eq!(f.efficiency, 5.0 / 15.0);
    assert_eq!(f.wasted_bytes, 14);
    assert_eq!(f.inefficiencies, [Inefficiency { path: "/a".into(), count: 2, cumulative_size: 14 }]);
    assert_eq!(f.user_wasted_percent, 14.0 / 4.0);
}

#[test]
fn directory_whiteout_counts_the_lower_subtree_only_with_its_own_entry() {
    let l0 = vec![e("d", 0, true), e("d/x", 3, false), e("d/y", 4, false), e("i/z", 9, false)];
    let f = figures(vec![l0.clone(), vec![e(".wh.d", 0, false), e(".wh.i", 0, false)]]);
    // /d seen once (as a dir with children it is no leaf in layer 0), whiteout adds 7;
    // /i is implied (no own entry): its whiteout adds 0.
    assert_eq!(f.wasted_bytes, 0);
    assert_eq!(f.efficiency, (3 + 4 + 9 + 7) as f64 / (3 + 4 + 9 + 7) as f64);
    let f = figures(vec![l0, vec![e("d/.wh.x", 0, false)]]);
    assert_eq!(f.inefficiencies, [Inefficiency { path: "/d/x".into(), count: 2, cumulative_size: 3 }]);
    assert_eq!(f.efficiency, 13.0 / 16.0);
}

#[test]
fn whiteout_of_a_missing_path_aborts_the_layer() {
    // Leaves are visited in byte order: `.wh.nothing` < `b`, so `b` is never counted,
    // and `/nothing` keeps dive's initial minimum of -1.
    let f = figures(vec![vec![e("a", 10, false)], vec![e(".wh.nothing", 0, false), e("b", 6, false)]]);
    assert_eq!(f.efficiency, (10 - 1) as f64 / 10.0);
    assert_eq!(f.size_bytes, 16);
}

#[test]
fn opaque_whiteouts_are_ignored_but_imply_their_directory() {
    let f = figures(vec![
        vec![e("d", 0, true), e("d/x", 5, false)],
        vec![e("d/.wh..wh..opq", 0, false)],
        vec![e("d/.wh..wh..opq", 0, false)],
    ]);
    // Layers 1 and 2 each have a leaf /d of size 0: /d seen twice, 0 bytes.
    assert_eq!(f.inefficiencies, [Inefficiency { path: "/d".into(), count: 2, cumulative_size: 0 }]);
    assert_eq!(f.efficiency, 1.0);
}

#[test]
fn go_file_modes() {
    assert_eq!(go_file_mode(0o755, b'5'), (1 << 31) | 0o755);
    assert_eq!(go_file_mode(0o4755, b'0'), (1 << 23) | 0o755);
    assert_eq!(go_file_mode(0o777, b'2'), (1 << 27) | 0o777);
}
