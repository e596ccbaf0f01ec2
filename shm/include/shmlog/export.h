// SHMLOG_API marks what libshmlog.so exports: the public API of the installed headers. The library
// is compiled with hidden visibility by default (docs/design.md, "The shared library and its
// symbols"), so whatever is not marked (detail::, the classes behind the pimpls, Boost.Interprocess
// and the standard library templates instantiated inside) stays inside it. Mark each function and
// each class with out-of-line members or a vtable that a header under */include declares; never a
// private header's. Harmless in the static library, whose objects are the same.
#pragma once

#define SHMLOG_API __attribute__((visibility("default")))
