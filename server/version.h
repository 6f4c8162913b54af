// The version vchd and vch report.
#ifndef VCH_SERVER_VERSION_H_
#define VCH_SERVER_VERSION_H_

namespace vch::server {
inline constexpr char kVchVersion[] = "0.1.0";
}

#endif  // VCH_SERVER_VERSION_H_
