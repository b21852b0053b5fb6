// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title AnchorRegistry: append-only record of Merkle roots (RFC 6962) and their tree sizes.
/// @notice Anyone may anchor; every anchor is keyed by its sender, so a verifier checks that
/// the root was anchored by the log operator's address and nobody can block an operator by
/// anchoring its root first. A sender cannot anchor the same root twice.
contract AnchorRegistry {
    struct Anchor {
        uint64 treeSize;
        uint64 blockTime;
        uint64 blockNumber;
    }

    mapping(address => mapping(bytes32 => Anchor)) private anchors;

    /// @notice Emitted once per anchored root.
    event Anchored(bytes32 indexed root, uint64 treeSize, address indexed sender, uint64 blockTime);

    error DuplicateRoot(bytes32 root);
    error EmptyTree();

    /// @notice Record `root` as the Merkle root of a log of `treeSize` leaves.
    function anchor(bytes32 root, uint64 treeSize) external {
        if (treeSize == 0) revert EmptyTree();
        Anchor storage slot = anchors[msg.sender][root];
        if (slot.treeSize != 0) revert DuplicateRoot(root);
        uint64 nowTime = uint64(block.timestamp);
        anchors[msg.sender][root] = Anchor(treeSize, nowTime, uint64(block.number));
        emit Anchored(root, treeSize, msg.sender, nowTime);
    }

    /// @notice The anchor of `root` by `sender`; treeSize 0 means never anchored.
    function anchorOf(address sender, bytes32 root)
        external
        view
        returns (uint64 treeSize, uint64 blockTime, uint64 blockNumber)
    {
        Anchor memory a = anchors[sender][root];
        return (a.treeSize, a.blockTime, a.blockNumber);
    }
}
