//! [`Few`]: a list that usually holds one item (the owners holding a correlation key value,
//! the targets holding one): the item inline, more on the heap. A `Vec` of one id costs a
//! heap block of four; a million keys would spend a hundred megabytes on them.

/// A non-empty list of usually one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Few<T> {
    /// The common case.
    One(T),
    /// Two or more.
    Many(Vec<T>),
}

impl<T: PartialEq + Ord> Few<T> {
    /// The items.
    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Self::One(t) => std::slice::from_ref(t),
            Self::Many(v) => v,
        }
    }

    /// Adds `item` where it sorts, unless present.
    pub(crate) fn insert_sorted(&mut self, item: T) {
        self.insert_with(item, |v, item| {
            if let Err(pos) = v.binary_search(&item) {
                v.insert(pos, item);
            }
        });
    }

    /// Adds `item` at the end, unless present.
    pub(crate) fn push_unique(&mut self, item: T) {
        self.insert_with(item, |v, item| {
            if !v.contains(&item) {
                v.push(item);
            }
        });
    }

    fn insert_with(&mut self, item: T, add: impl FnOnce(&mut Vec<T>, T)) {
        match self {
            Self::One(t) if *t == item => {}
            Self::One(_) => {
                let Self::One(first) = std::mem::replace(self, Self::Many(Vec::with_capacity(2)))
                else {
                    unreachable!("matched One above")
                };
                if let Self::Many(v) = self {
                    v.push(first);
                    add(v, item);
                }
            }
            Self::Many(v) => add(v, item),
        }
    }

    /// Removes `item`; returns whether the list is now empty (the caller drops it).
    pub(crate) fn remove(&mut self, item: &T) -> bool {
        match self {
            Self::One(t) => t == item,
            Self::Many(v) => {
                v.retain(|t| t != item);
                if v.len() == 1
                    && let Some(last) = v.pop()
                {
                    *self = Self::One(last);
                }
                matches!(self, Self::Many(v) if v.is_empty())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_then_many_then_one() {
        let mut f = Few::One(5u32);
        f.insert_sorted(5);
        assert_eq!(f, Few::One(5));
        f.insert_sorted(2);
        f.insert_sorted(9);
        assert_eq!(f.as_slice(), &[2, 5, 9]);
        assert!(!f.remove(&5));
        assert!(!f.remove(&9));
        assert_eq!(f, Few::One(2));
        assert!(!f.remove(&7));
        assert!(f.remove(&2));
        let mut p = Few::One(3u32);
        p.push_unique(1);
        p.push_unique(3);
        assert_eq!(p.as_slice(), &[3, 1]);
    }
}
