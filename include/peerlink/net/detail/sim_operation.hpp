// Pending operations of the simulated transport and timer, with their handler type
// erased, and the binder that posts a handler with its completion arguments.
//
// Completion always goes through `asio::post` on the I/O executor with a binder
// that forwards the handler's associated executor and allocator, so a handler
// bound to a strand runs there and no handler runs inside its initiating call.
#ifndef PEERLINK_NET_DETAIL_SIM_OPERATION_HPP
#define PEERLINK_NET_DETAIL_SIM_OPERATION_HPP

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associator.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/post.hpp>

#include <tuple>
#include <type_traits>
#include <utility>

namespace peerlink::detail {

template <class Handler, class... Args>
struct sim_bound_handler {
    Handler handler_;
    std::tuple<Args...> args_;

    void operator()() { std::apply(std::move(handler_), std::move(args_)); }
};

template <class Executor, class Handler, class... Args>
void sim_post(const Executor& ex, Handler&& handler, Args... args) {
    asio::post(ex, sim_bound_handler<std::decay_t<Handler>, Args...>{
                       std::forward<Handler>(handler), std::tuple<Args...>(std::move(args)...)});
}

template <class... Args>
class sim_operation {
public:
    sim_operation() = default;
    sim_operation(const sim_operation&) = delete;
    sim_operation& operator=(const sim_operation&) = delete;
    virtual ~sim_operation() = default;

    // Posts the handler; the operation is spent afterwards and only fit to be destroyed.
    virtual void complete(Args... args) = 0;
};

template <class Handler, class Executor, class... Args>
class sim_operation_impl final : public sim_operation<Args...> {
public:
    template <class H>
    sim_operation_impl(H&& handler, const Executor& ex)
        : handler_(std::forward<H>(handler)), ex_(ex),
          slot_(asio::get_associated_cancellation_slot(handler_)) {}

    // The cancellation handler installed in the slot refers to this operation, so it
    // must go before the operation does, or a later emit would reach a dead object.
    ~sim_operation_impl() override { clear_slot(); }

    template <class CancellationHandler, class... CtorArgs>
    void install_cancellation(CtorArgs&&... ctor_args) {
        if (slot_.is_connected())
            slot_.template emplace<CancellationHandler>(std::forward<CtorArgs>(ctor_args)...);
    }

    void complete(Args... args) override {
        clear_slot();
        sim_post(ex_, std::move(handler_), std::move(args)...);
    }

private:
    void clear_slot() noexcept {
        if (slot_.is_connected())
            slot_.clear();
    }

    Handler handler_;
    Executor ex_;
    asio::associated_cancellation_slot_t<Handler> slot_;
};

} // namespace peerlink::detail

// The binder is transparent to Asio's associators (executor, allocator, cancellation
// slot), as Asio's own binders are.
template <template <class, class> class Associator, class Handler, class... Args,
          class DefaultCandidate>
struct asio::associator<Associator, peerlink::detail::sim_bound_handler<Handler, Args...>,
                        DefaultCandidate> : Associator<Handler, DefaultCandidate> {
    static typename Associator<Handler, DefaultCandidate>::type
    get(const peerlink::detail::sim_bound_handler<Handler, Args...>& h) noexcept {
        return Associator<Handler, DefaultCandidate>::get(h.handler_);
    }
    static typename Associator<Handler, DefaultCandidate>::type
    get(const peerlink::detail::sim_bound_handler<Handler, Args...>& h,
        const DefaultCandidate& c) noexcept {
        return Associator<Handler, DefaultCandidate>::get(h.handler_, c);
    }
};

#endif // PEERLINK_NET_DETAIL_SIM_OPERATION_HPP
