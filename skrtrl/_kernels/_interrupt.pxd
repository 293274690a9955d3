cdef bint signal_raised() noexcept nogil
