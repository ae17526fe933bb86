// A type-erased pending operation: stores a completion handler until the
// connection completes it. (asio::any_completion_handler needs Asio 1.26; the
// distribution's 1.22 lacks it.)
#ifndef PEERLINK_DETAIL_PENDING_OP_HPP
#define PEERLINK_DETAIL_PENDING_OP_HPP

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>

#include <memory>
#include <tuple>
#include <utility>

namespace peerlink::detail {

template <class... Args>
class pending_op {
public:
    /// Hands the handler its arguments through its associated executor (never
    /// inline: the caller may be the initiating function) and frees this op.
    virtual void complete(Args... args) = 0;
    /// Frees the op without calling the handler (its executor is gone).
    virtual void destroy() noexcept = 0;

protected:
    ~pending_op() = default;
};

template <class Handler, class IoExecutor, class... Args>
class pending_op_impl final : public pending_op<Args...> {
public:
    pending_op_impl(Handler&& h, const IoExecutor& io_ex)
        : handler_(std::move(h)), work_(asio::get_associated_executor(handler_, io_ex)) {}

    void complete(Args... args) override {
        asio::get_associated_cancellation_slot(handler_).clear();
        auto h = std::move(handler_);
        auto work = std::move(work_);
        delete this;
        auto ex = work.get_executor();
        asio::post(ex, [h = std::move(h), t = std::make_tuple(std::move(args)...)]() mutable {
            std::apply(std::move(h), std::move(t));
        });
    }

    void destroy() noexcept override {
        asio::get_associated_cancellation_slot(handler_).clear();
        delete this;
    }

private:
    Handler handler_;
    asio::executor_work_guard<asio::associated_executor_t<Handler, IoExecutor>> work_;
};

/// Owns a pending op; destroying it without completing frees the handler.
template <class... Args>
struct pending_op_deleter {
    void operator()(pending_op<Args...>* op) const noexcept { op->destroy(); }
};
template <class... Args>
using pending_op_ptr = std::unique_ptr<pending_op<Args...>, pending_op_deleter<Args...>>;

template <class... Args, class Handler, class IoExecutor>
pending_op_ptr<Args...> make_pending_op(Handler&& h, const IoExecutor& io_ex) {
    using op = pending_op_impl<std::decay_t<Handler>, IoExecutor, Args...>;
    return pending_op_ptr<Args...>(new op(std::forward<Handler>(h), io_ex));
}

/// Completes and empties `p`, if it holds an op.
template <class... Args, class... A>
void complete_op(pending_op_ptr<Args...>& p, A&&... a) {
    if (auto* op = p.release())
        op->complete(std::forward<A>(a)...);
}

} // namespace peerlink::detail

#endif // PEERLINK_DETAIL_PENDING_OP_HPP
