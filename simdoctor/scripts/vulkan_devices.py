"""List Vulkan physical devices as the loader enumerates them, through ctypes (no vulkan-tools).

Run as a separate process: a broken driver may crash here, not in simdoctor. Prints one JSON line:
{"ok": true, "devices": [{index, name, type, vendor_id, device_id, api_version, driver_version,
uuid, driver_name, driver_info}]} or {"ok": false, "stage": ..., "result": ..., "error": ...}.
Standard library only, Python 3.8 compatible.
"""

import ctypes
import json
import sys

VK_SUCCESS = 0
VK_INCOMPLETE = 5
RESULTS = {
    -1: "VK_ERROR_OUT_OF_HOST_MEMORY",
    -2: "VK_ERROR_OUT_OF_DEVICE_MEMORY",
    -3: "VK_ERROR_INITIALIZATION_FAILED",
    -4: "VK_ERROR_DEVICE_LOST",
    -6: "VK_ERROR_LAYER_NOT_PRESENT",
    -7: "VK_ERROR_EXTENSION_NOT_PRESENT",
    -9: "VK_ERROR_INCOMPATIBLE_DRIVER",
}
DEVICE_TYPES = {0: "OTHER", 1: "INTEGRATED_GPU", 2: "DISCRETE_GPU", 3: "VIRTUAL_GPU", 4: "CPU"}
STYPE_APPLICATION_INFO = 0
STYPE_INSTANCE_CREATE_INFO = 1
STYPE_PHYSICAL_DEVICE_PROPERTIES_2 = 1000059001
STYPE_PHYSICAL_DEVICE_ID_PROPERTIES = 1000071004
STYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES = 1000196000
API_1_1 = (1 << 22) | (1 << 12)


def make_version(v):
    return "%d.%d.%d" % (v >> 22, (v >> 12) & 0x3FF, v & 0xFFF)


class ApplicationInfo(ctypes.Structure):
    _fields_ = [
        ("sType", ctypes.c_int),
        ("pNext", ctypes.c_void_p),
        ("pApplicationName", ctypes.c_char_p),
        ("applicationVersion", ctypes.c_uint32),
        ("pEngineName", ctypes.c_char_p),
        ("engineVersion", ctypes.c_uint32),
        ("apiVersion", ctypes.c_uint32),
    ]


class InstanceCreateInfo(ctypes.Structure):
    _fields_ = [
        ("sType", ctypes.c_int),
        ("pNext", ctypes.c_void_p),
        ("flags", ctypes.c_uint32),
        ("pApplicationInfo", ctypes.POINTER(ApplicationInfo)),
        ("enabledLayerCount", ctypes.c_uint32),
        ("ppEnabledLayerNames", ctypes.c_void_p),
        ("enabledExtensionCount", ctypes.c_uint32),
        ("ppEnabledExtensionNames", ctypes.c_void_p),
    ]


class Header(ctypes.Structure):
    """sType + pNext, the head of every extensible Vulkan structure."""

    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p)]


class IdProperties(ctypes.Structure):
    _fields_ = [
        ("sType", ctypes.c_int),
        ("pNext", ctypes.c_void_p),
        ("deviceUUID", ctypes.c_uint8 * 16),
        ("driverUUID", ctypes.c_uint8 * 16),
        ("deviceLUID", ctypes.c_uint8 * 8),
        ("deviceNodeMask", ctypes.c_uint32),
        ("deviceLUIDValid", ctypes.c_uint32),
    ]


class DriverProperties(ctypes.Structure):
    _fields_ = [
        ("sType", ctypes.c_int),
        ("pNext", ctypes.c_void_p),
        ("driverID", ctypes.c_int),
        ("driverName", ctypes.c_char * 256),
        ("driverInfo", ctypes.c_char * 256),
        ("conformanceVersion", ctypes.c_uint8 * 4),
    ]


class Properties2(ctypes.Structure):
    # VkPhysicalDeviceProperties is read by offset from a buffer larger than the real struct
    # (817 bytes on 64-bit), so its long limits table need not be spelled out here.
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("properties", ctypes.c_uint8 * 1024)]


def uuid_text(raw):
    h = "".join("%02x" % b for b in raw)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def fail(stage, result):
    print(json.dumps({"ok": False, "stage": stage, "result": result, "error": RESULTS.get(result, str(result))}))
    return 1


def main():
    try:
        vk = ctypes.CDLL("libvulkan.so.1")
    except OSError as exc:
        print(json.dumps({"ok": False, "stage": "load", "result": None, "error": str(exc)}))
        return 1
    app = ApplicationInfo(STYPE_APPLICATION_INFO, None, b"simdoctor", 1, b"simdoctor", 1, API_1_1)
    info = InstanceCreateInfo(STYPE_INSTANCE_CREATE_INFO, None, 0, ctypes.pointer(app), 0, None, 0, None)
    instance = ctypes.c_void_p()
    result = vk.vkCreateInstance(ctypes.byref(info), None, ctypes.byref(instance))
    if result != VK_SUCCESS:
        return fail("vkCreateInstance", result)
    count = ctypes.c_uint32()
    result = vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None)
    if result != VK_SUCCESS:
        return fail("vkEnumeratePhysicalDevices", result)
    handles = (ctypes.c_void_p * count.value)()
    result = vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), handles)
    if result not in (VK_SUCCESS, VK_INCOMPLETE):
        return fail("vkEnumeratePhysicalDevices", result)

    vk.vkGetInstanceProcAddr.restype = ctypes.c_void_p
    address = vk.vkGetInstanceProcAddr(instance, b"vkGetPhysicalDeviceProperties2")
    get_properties2 = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(address) if address else None

    devices = []
    for index in range(count.value):
        props = Properties2(STYPE_PHYSICAL_DEVICE_PROPERTIES_2, None)
        ids = IdProperties(STYPE_PHYSICAL_DEVICE_ID_PROPERTIES, None)
        driver = DriverProperties(STYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, None)
        # Plain properties first: the driver-properties struct may only be chained on Vulkan 1.2+.
        vk.vkGetPhysicalDeviceProperties(ctypes.c_void_p(handles[index]), props.properties)
        raw = bytes(props.properties)
        api = int.from_bytes(raw[0:4], "little")
        has_driver_props = (api >> 22, (api >> 12) & 0x3FF) >= (1, 2)
        if get_properties2 is not None:
            props.pNext = ctypes.cast(ctypes.pointer(ids), ctypes.c_void_p)
            if has_driver_props:
                ids.pNext = ctypes.cast(ctypes.pointer(driver), ctypes.c_void_p)
            get_properties2(handles[index], ctypes.addressof(props))
            raw = bytes(props.properties)
        devices.append(
            {
                "index": index,
                "api_version": make_version(api),
                "driver_version": int.from_bytes(raw[4:8], "little"),
                "vendor_id": int.from_bytes(raw[8:12], "little"),
                "device_id": int.from_bytes(raw[12:16], "little"),
                "type": DEVICE_TYPES.get(int.from_bytes(raw[16:20], "little"), "OTHER"),
                "name": raw[20:276].split(b"\0", 1)[0].decode("utf-8", "replace"),
                "uuid": uuid_text(bytes(ids.deviceUUID)) if get_properties2 is not None else None,
                "driver_name": driver.driverName.decode("utf-8", "replace") if has_driver_props else None,
                "driver_info": driver.driverInfo.decode("utf-8", "replace") if has_driver_props else None,
            }
        )
    vk.vkDestroyInstance(instance, None)
    print(json.dumps({"ok": True, "devices": devices}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
