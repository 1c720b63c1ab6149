"""The paged KV cache's bookkeeping: fixed-size blocks, a free list, reference
counts and prefix caching.

A block that holds a full block of computed prompt/output tokens is named by a
hash chained over every token before it, so two sequences with the same first
``k * block_size`` tokens share those ``k`` physical blocks (reference
counted).  A cached block whose last user left stays cached but evictable
(least recently freed first) until a fresh block is needed.  A chain starts from a ``root``: the
same tokens computed under different LoRA adapters hold different keys and values, so each adapter
has its own root and never shares a block with another.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence


class OutOfBlocks(Exception):
    """No free block: the scheduler should have preempted first."""


def chain_hashes(tokens: Sequence[int], block_size: int, upto_blocks: int, start: int = 0, prev: int = 0) -> list[int]:
    """Hashes of full blocks ``start..upto_blocks`` of ``tokens``, chained from ``prev``."""
    out = []
    for b in range(start, upto_blocks):
        prev = hash((prev, tuple(tokens[b * block_size : (b + 1) * block_size])))
        out.append(prev)
    return out


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool = True) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError("need at least one block of at least one token")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        self.ref = [0] * num_blocks
        self._fresh: deque[int] = deque(range(num_blocks))
        self._evictable: OrderedDict[int, None] = OrderedDict()  # cached blocks nobody uses, oldest first
        self._hash_of: dict[int, int] = {}
        self._by_hash: dict[int, int] = {}
        self.hits = 0  # blocks reused from the prefix cache

    @property
    def num_free(self) -> int:
        return len(self._fresh) + len(self._evictable)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def allocate(self) -> int:
        if self._fresh:
            block = self._fresh.popleft()
        elif self._evictable:
            block, _ = self._evictable.popitem(last=False)
            del self._by_hash[self._hash_of.pop(block)]
        else:
            raise OutOfBlocks("the KV cache is full")
        self.ref[block] = 1
        return block

    def release(self, blocks: Sequence[int]) -> None:
        for block in blocks:
            self.ref[block] -= 1
            if self.ref[block] == 0:
                if block in self._hash_of:
                    self._evictable[block] = None
                else:
                    self._fresh.append(block)

    def match_prefix(self, tokens: Sequence[int], root: int = 0) -> tuple[list[int], list[int]]:
        """Cached blocks holding a prefix of ``tokens`` (taking a reference on
        each) and their hashes.  The last token is never matched: its logits
        must be computed."""
        if not self.prefix_caching:
            return [], []
        blocks, hashes = [], []
        for h in chain_hashes(tokens, self.block_size, (len(tokens) - 1) // self.block_size, prev=root):
            block = self._by_hash.get(h)
            if block is None:
                break
            if self.ref[block] == 0:
                del self._evictable[block]
            self.ref[block] += 1
            blocks.append(block)
            hashes.append(h)
        self.hits += len(blocks)
        return blocks, hashes

    def commit(
        self, tokens: Sequence[int], table: Sequence[int], hashes: list[int], computed: int, root: int = 0
    ) -> None:
        """Name the sequence's newly filled blocks (its chain from ``root``) so later sequences can share them."""
        if not self.prefix_caching:
            return
        full = computed // self.block_size
        prev = hashes[-1] if hashes else root
        for i, h in enumerate(chain_hashes(tokens, self.block_size, full, len(hashes), prev), start=len(hashes)):
            hashes.append(h)
            block = table[i]
            if h not in self._by_hash and block not in self._hash_of:
                self._by_hash[h] = block
                self._hash_of[block] = h
