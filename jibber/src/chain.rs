//! An order-3, word-level Markov chain trained on "Jabberwocky".
//!
//! The poem is read as one stream of words (split on whitespace, punctuation kept on the
//! word it touches) that wraps around at the end, so every three-word state has at least
//! one successor. A generated line starts at the first three words of a source line,
//! then repeatedly picks, uniformly, one of the words that followed the current three
//! words somewhere in the stream. It ends on the first word that ended a line in the
//! source, or after [`MAX_WORDS`] words, whichever comes first; so a line always has at
//! least one word and generation always terminates.
//!
//! Randomness comes from [`SplitMix64`], so a seed gives the same verse on every run and
//! every platform.

/// The full text of Lewis Carroll's "Jabberwocky" (1871, public domain).
pub const POEM: &str = include_str!("jabberwocky.txt");

/// Order of the chain: how many previous words make up a state.
pub const ORDER: usize = 3;

/// The longest line [`Chain::line`] produces, in words.
pub const MAX_WORDS: usize = 12;

/// Lines in a verse produced by [`Chain::verse`].
pub const VERSE_LINES: usize = 10;

/// The splitmix64 generator (Steele, Lea, Flood 2014): tiny, fast, and good enough to
/// pick words. Not for anything that needs unpredictability.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose output is fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (Lemire's multiply-shift; the bias is at most n/2^64).
    /// Returns 0 when `n` is 0, so callers never divide by zero.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// The trained chain. Build it once with [`Chain::new`]; it is immutable afterwards and
/// can be shared between threads.
#[derive(Debug)]
pub struct Chain {
    /// Distinct words, indexed by word id.
    vocab: Vec<&'static str>,
    /// The poem as word ids, in order.
    stream: Vec<u16>,
    /// `ends_line[id]`: the word ended at least one line of the source.
    ends_line: Vec<bool>,
    /// Positions in `stream` where a source line starts.
    starts: Vec<usize>,
}

impl Chain {
    /// Trains a chain on `text`. Blank lines are ignored. Returns `None` when the text
    /// has fewer than [`ORDER`] + 1 words or more distinct words than fit a `u16`.
    pub fn new(text: &'static str) -> Option<Chain> {
        let mut vocab: Vec<&'static str> = Vec::new();
        let mut ends_line: Vec<bool> = Vec::new();
        let mut stream: Vec<u16> = Vec::new();
        let mut starts = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace().peekable();
            if words.peek().is_none() {
                continue;
            }
            starts.push(stream.len());
            while let Some(word) = words.next() {
                let id = match vocab.iter().position(|w| *w == word) {
                    Some(id) => id,
                    None => {
                        vocab.push(word);
                        ends_line.push(false);
                        vocab.len() - 1
                    }
                };
                if words.peek().is_none() {
                    ends_line[id] = true;
                }
                stream.push(u16::try_from(id).ok()?);
            }
        }
        if stream.len() <= ORDER {
            return None;
        }
        Some(Chain { vocab, stream, ends_line, starts })
    }

    /// The chain trained on [`POEM`].
    pub fn jabberwocky() -> Chain {
        // The poem is a compile-time constant with well over ORDER words.
        Chain::new(POEM).expect("the embedded poem trains a chain")
    }

    /// The word id at stream position `pos`, wrapping around the end.
    fn at(&self, pos: usize) -> u16 {
        self.stream[pos % self.stream.len()]
    }

    /// One line of verse, as words.
    pub fn line(&self, rng: &mut SplitMix64) -> Vec<&'static str> {
        let start = self.starts[rng.below(self.starts.len())];
        let mut out = Vec::with_capacity(MAX_WORDS);
        // The opening state is a source line's first ORDER words; the line may end
        // inside it (a line shorter than ORDER words, or an early line-ending word).
        for i in 0..ORDER {
            let id = self.at(start + i);
            out.push(self.vocab[usize::from(id)]);
            if self.ends_line[usize::from(id)] {
                return out;
            }
        }
        // `state` is a stream position whose ORDER words equal the last ORDER emitted.
        let mut state = start;
        let mut followers = Vec::new();
        while out.len() < MAX_WORDS {
            followers.clear();
            for pos in 0..self.stream.len() {
                if (0..ORDER).all(|i| self.at(pos + i) == self.at(state + i)) {
                    followers.push(pos);
                }
            }
            // `state` itself always matches, so `followers` is never empty.
            let pos = followers[rng.below(followers.len())];
            let id = self.at(pos + ORDER);
            out.push(self.vocab[usize::from(id)]);
            if self.ends_line[usize::from(id)] {
                break;
            }
            state = pos + 1;
        }
        out
    }

    /// [`VERSE_LINES`] lines of verse for `seed`, each line's words joined by one space.
    pub fn verse(&self, seed: u64) -> Vec<String> {
        let mut rng = SplitMix64::new(seed);
        (0..VERSE_LINES).map(|_| self.line(&mut rng).join(" ")).collect()
    }

    /// The verse for `seed` as an HTML fragment: each line HTML-escaped and followed by
    /// `<br/>\n`.
    pub fn verse_html(&self, seed: u64) -> String {
        let mut html = String::with_capacity(1024);
        for line in self.verse(seed) {
            for c in line.chars() {
                match c {
                    '&' => html.push_str("&amp;"),
                    '<' => html.push_str("&lt;"),
                    '>' => html.push_str("&gt;"),
                    c => html.push(c),
                }
            }
            html.push_str("<br/>\n");
        }
        html
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poem_words() -> Vec<&'static str> {
        POEM.split_whitespace().collect()
    }

    /// True when `window` occurs in the poem's word stream (wrapping around the end).
    fn occurs(stream: &[&str], window: &[&str]) -> bool {
        (0..stream.len()).any(|p| window.iter().enumerate().all(|(i, w)| stream[(p + i) % stream.len()] == *w))
    }

    #[test]
    fn splitmix_known_values() {
        // Reference output of splitmix64 seeded with 0.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(42);
        assert_eq!(rng.below(0), 0);
        for n in 1..200 {
            for _ in 0..50 {
                assert!(rng.below(n) < n);
            }
        }
    }

    #[test]
    fn poem_is_complete() {
        let chain = Chain::jabberwocky();
        assert_eq!(chain.starts.len(), 28, "seven stanzas of four lines");
        assert_eq!(chain.stream.len(), poem_words().len());
        assert!(POEM.contains("He chortled in his joy."));
        assert!(POEM.contains("Callooh! Callay!"));
    }

    #[test]
    fn same_seed_same_verse() {
        let chain = Chain::jabberwocky();
        for seed in [0, 1, 7, 42, u64::MAX, 0xDEAD_BEEF] {
            assert_eq!(chain.verse(seed), chain.verse(seed));
            assert_eq!(chain.verse_html(seed), Chain::jabberwocky().verse_html(seed));
        }
    }

    #[test]
    fn seed_zero_is_pinned() {
        // Pins the output across versions and platforms: the same seed must give the
        // same verse on every run.
        let expected = [
            "'Twas brillig, and the slithy toves",
            "All mimsy were the borogoves,",
            "Come to my arms, my beamish boy!",
            "Came whiffling through",
            "And burbled as it came!",
            "The Jabberwock, with eyes of flame,",
            "He chortled in his joy.",
            "Long time the manxome foe he sought\u{2014}",
            "The vorpal blade went snicker-snack!",
            "Beware the Jubjub bird, and shun",
        ];
        assert_eq!(Chain::jabberwocky().verse(0), expected);
    }

    #[test]
    fn different_seeds_differ() {
        let chain = Chain::jabberwocky();
        let distinct: std::collections::HashSet<Vec<String>> = (0..50).map(|s| chain.verse(s)).collect();
        assert!(distinct.len() > 40, "only {} distinct verses", distinct.len());
    }

    #[test]
    fn ten_nonempty_lines_of_bounded_length() {
        let chain = Chain::jabberwocky();
        for seed in 0..500 {
            let verse = chain.verse(seed);
            assert_eq!(verse.len(), VERSE_LINES);
            for line in &verse {
                assert!(!line.trim().is_empty());
                let n = line.split(' ').count();
                assert!((1..=MAX_WORDS).contains(&n), "{n} words: {line}");
                assert!(!line.contains("  "));
            }
        }
    }

    #[test]
    fn words_and_windows_come_from_the_poem() {
        let chain = Chain::jabberwocky();
        let stream = poem_words();
        for seed in 0..300 {
            for line in chain.verse(seed) {
                let words: Vec<&str> = line.split(' ').collect();
                for w in &words {
                    assert!(stream.contains(w), "{w:?} is not in the poem");
                }
                // Order 3: every ORDER + 1 consecutive words appear together in the poem.
                for window in words.windows(ORDER + 1) {
                    assert!(occurs(&stream, window), "{window:?} is not in the poem");
                }
                // The line starts where a source line starts.
                let head = &words[..words.len().min(ORDER)];
                assert!(
                    POEM.lines().any(|l| {
                        let lw: Vec<&str> = l.split_whitespace().collect();
                        lw.starts_with(head)
                    }),
                    "{line:?} does not start like a line of the poem"
                );
            }
        }
    }

    #[test]
    fn lines_end_on_line_ending_words_or_max_length() {
        let chain = Chain::jabberwocky();
        let enders: Vec<&str> = POEM.lines().filter_map(|l| l.split_whitespace().last()).collect();
        for seed in 0..300 {
            for line in chain.verse(seed) {
                let words: Vec<&str> = line.split(' ').collect();
                let last = words[words.len() - 1];
                assert!(enders.contains(&last) || words.len() == MAX_WORDS, "{line:?} ends early");
                // No line-ending word before the last one.
                for w in &words[..words.len() - 1] {
                    assert!(!enders.contains(w), "{line:?} runs past {w:?}");
                }
            }
        }
    }

    #[test]
    fn html_has_ten_br_lines() {
        let chain = Chain::jabberwocky();
        let html = chain.verse_html(3);
        assert_eq!(html.matches("<br/>\n").count(), VERSE_LINES);
        assert!(html.ends_with("<br/>\n"));
        assert_eq!(html.lines().count(), VERSE_LINES);
    }

    #[test]
    fn html_escapes_markup() {
        let chain = Chain::new("<a> & <b> c d\nx y z w\n").unwrap();
        for seed in 0..20 {
            let html = chain.verse_html(seed);
            assert!(!html.replace("<br/>", "").contains('<'), "{html}");
        }
    }

    #[test]
    fn tiny_and_degenerate_corpora() {
        assert!(Chain::new("").is_none());
        assert!(Chain::new("\n\n  \n").is_none());
        assert!(Chain::new("one two three").is_none());
        // One line of exactly ORDER + 1 words: the stream wraps, so nothing gets stuck.
        let chain = Chain::new("a b c d").unwrap();
        for seed in 0..50 {
            assert_eq!(chain.verse(seed), vec!["a b c d"; VERSE_LINES]);
        }
        // Short lines (fewer words than ORDER) stay short and non-empty.
        let chain = Chain::new("hi\nlo there\nx y z w v\n").unwrap();
        for seed in 0..50 {
            for line in chain.verse(seed) {
                assert!(!line.is_empty());
            }
        }
        // No word ever ends a line except at the end of the stream: MAX_WORDS caps it.
        let chain = Chain::new("a a a a a a a a a a a a a a a a a a a a a b").unwrap();
        for seed in 0..50 {
            for line in chain.verse(seed) {
                assert!(line.split(' ').count() <= MAX_WORDS);
            }
        }
    }
}
