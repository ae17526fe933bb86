// peerlink/proto/packet_buffer.hpp: a packet in a buffer with headroom.
//
// Every stage of the packet pipeline (framing, FEC, AEAD, disguise) works in place
// on one `packet_buffer`: a stage that adds a header takes bytes from the headroom
// in front of the data, a stage that adds a tag takes bytes behind it. So a packet
// is built without a copy per stage and without an allocation per packet.
#ifndef PEERLINK_PROTO_PACKET_BUFFER_HPP
#define PEERLINK_PROTO_PACKET_BUFFER_HPP

#include <cassert>
#include <cstddef>
#include <cstring>
#include <span>

namespace peerlink {

/// A view of caller-owned storage, split into headroom, data and tailroom.
///
/// The buffer owns nothing; the storage outlives it. Operations that would leave
/// the storage return false and change nothing.
class packet_buffer {
public:
    packet_buffer() = default;

    /// Views `storage` with `headroom` bytes reserved in front of an empty packet.
    packet_buffer(std::span<std::byte> storage, std::size_t headroom) noexcept
        : storage_(storage), head_(headroom <= storage.size() ? headroom : storage.size()),
          tail_(head_) {}

    /// The packet's bytes.
    std::span<std::byte> data() noexcept { return storage_.subspan(head_, tail_ - head_); }
    std::span<const std::byte> data() const noexcept {
        return storage_.subspan(head_, tail_ - head_);
    }
    std::size_t size() const noexcept { return tail_ - head_; }
    bool empty() const noexcept { return head_ == tail_; }
    std::size_t headroom() const noexcept { return head_; }
    std::size_t tailroom() const noexcept { return storage_.size() - tail_; }

    /// Grows the packet by `n` bytes in front; the new bytes are returned, unset.
    std::span<std::byte> prepend(std::size_t n) noexcept {
        if (n > head_)
            return {};
        head_ -= n;
        return storage_.subspan(head_, n);
    }

    /// Grows the packet by `n` bytes at the back; the new bytes are returned, unset.
    std::span<std::byte> append(std::size_t n) noexcept {
        if (n > tailroom())
            return {};
        tail_ += n;
        return storage_.subspan(tail_ - n, n);
    }

    /// Appends a copy of `bytes`. @returns false if the tailroom is too small.
    bool append(std::span<const std::byte> bytes) noexcept {
        const std::size_t n = bytes.size();
        if (n > tailroom())
            return false;
        if (n != 0)
            std::memcpy(storage_.data() + tail_, bytes.data(), n);
        tail_ += n;
        return true;
    }

    /// Removes `n` bytes from the front (a header that was read).
    bool consume_front(std::size_t n) noexcept {
        if (n > size())
            return false;
        head_ += n;
        return true;
    }

    /// Removes `n` bytes from the back (a tag that was checked).
    bool consume_back(std::size_t n) noexcept {
        if (n > size())
            return false;
        tail_ -= n;
        return true;
    }

    /// Sets the packet to `n` bytes at the current front (after a receive into data()).
    bool resize(std::size_t n) noexcept {
        if (n > storage_.size() - head_)
            return false;
        tail_ = head_ + n;
        return true;
    }

    /// Empties the packet and restores `headroom` bytes of headroom.
    void reset(std::size_t headroom) noexcept {
        head_ = tail_ = headroom <= storage_.size() ? headroom : storage_.size();
    }

    /// The whole storage, for a receive call that fills it from the start.
    std::span<std::byte> storage() noexcept { return storage_; }

private:
    std::span<std::byte> storage_;
    std::size_t head_ = 0;
    std::size_t tail_ = 0;
};

} // namespace peerlink

#endif // PEERLINK_PROTO_PACKET_BUFFER_HPP
