"""List Vulkan physical devices as the loader enumerates them, through ctypes (no vulkan-tools).

Run as a separate process: a broken driver may crash here, not in simdoctor. Prints one JSON line:
{"ok": true, "devices": [{index, name, type, vendor_id, device_id, api_version, driver_version,
uuid, driver_name, driver_info}]} or {"ok": false, "stage": ..., "result": ..., "error": ...}.

`--present N`: whether device N (the Vulkan index, CARLA's -graphicsadapter) can show a window on $DISPLAY,
asked the way a Vulkan window asks (UE4's VulkanRHI): an instance with VK_KHR_surface + VK_KHR_xlib_surface,
vkGetPhysicalDeviceXlibPresentationSupportKHR per queue family, an X window (libX11) and its
vkCreateXlibSurfaceKHR, surface support, capabilities and formats, a logical device with VK_KHR_swapchain,
vkCreateSwapchainKHR and its images. One JSON line per stage reached ({"stage": name}, flushed, so a driver
that kills the process still says where), then {"ok": true|false, "stage", "error", ...}.
Standard library only, Python 3.8 compatible.
"""

import ctypes
import json
import os
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


STYPE_XLIB_SURFACE_CREATE_INFO = 1000004000
STYPE_DEVICE_QUEUE_CREATE_INFO = 2
STYPE_DEVICE_CREATE_INFO = 3
STYPE_SWAPCHAIN_CREATE_INFO = 1000001000
QUEUE_GRAPHICS = 0x1
IMAGE_USAGE_COLOR_ATTACHMENT = 0x10
PRESENT_MODE_FIFO = 2
COMPOSITE_ALPHA_OPAQUE = 0x1


class QueueFamilyProperties(ctypes.Structure):
    _fields_ = [("queueFlags", ctypes.c_uint32), ("queueCount", ctypes.c_uint32),
                ("timestampValidBits", ctypes.c_uint32), ("granularity", ctypes.c_uint32 * 3)]  # fmt: skip


class XlibSurfaceCreateInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("flags", ctypes.c_uint32),
                ("dpy", ctypes.c_void_p), ("window", ctypes.c_ulong)]  # fmt: skip


class SurfaceCapabilities(ctypes.Structure):
    _fields_ = [("minImageCount", ctypes.c_uint32), ("maxImageCount", ctypes.c_uint32),
                ("currentExtent", ctypes.c_uint32 * 2), ("minImageExtent", ctypes.c_uint32 * 2),
                ("maxImageExtent", ctypes.c_uint32 * 2), ("maxImageArrayLayers", ctypes.c_uint32),
                ("supportedTransforms", ctypes.c_uint32), ("currentTransform", ctypes.c_uint32),
                ("supportedCompositeAlpha", ctypes.c_uint32), ("supportedUsageFlags", ctypes.c_uint32)]  # fmt: skip


class SurfaceFormat(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("colorSpace", ctypes.c_int)]


class DeviceQueueCreateInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("flags", ctypes.c_uint32),
                ("queueFamilyIndex", ctypes.c_uint32), ("queueCount", ctypes.c_uint32),
                ("pQueuePriorities", ctypes.POINTER(ctypes.c_float))]  # fmt: skip


class DeviceCreateInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("flags", ctypes.c_uint32),
                ("queueCreateInfoCount", ctypes.c_uint32), ("pQueueCreateInfos", ctypes.POINTER(DeviceQueueCreateInfo)),
                ("enabledLayerCount", ctypes.c_uint32), ("ppEnabledLayerNames", ctypes.c_void_p),
                ("enabledExtensionCount", ctypes.c_uint32), ("ppEnabledExtensionNames", ctypes.c_void_p),
                ("pEnabledFeatures", ctypes.c_void_p)]  # fmt: skip


class SwapchainCreateInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("flags", ctypes.c_uint32),
                ("surface", ctypes.c_uint64), ("minImageCount", ctypes.c_uint32), ("imageFormat", ctypes.c_int),
                ("imageColorSpace", ctypes.c_int), ("imageExtent", ctypes.c_uint32 * 2),
                ("imageArrayLayers", ctypes.c_uint32), ("imageUsage", ctypes.c_uint32),
                ("imageSharingMode", ctypes.c_int), ("queueFamilyIndexCount", ctypes.c_uint32),
                ("pQueueFamilyIndices", ctypes.c_void_p), ("preTransform", ctypes.c_int),
                ("compositeAlpha", ctypes.c_int), ("presentMode", ctypes.c_int), ("clipped", ctypes.c_uint32),
                ("oldSwapchain", ctypes.c_uint64)]  # fmt: skip


def names(*texts):
    array = (ctypes.c_char_p * len(texts))(*[t.encode() for t in texts])
    return ctypes.cast(array, ctypes.c_void_p), array


def stage(reached, **facts):
    facts["stage"] = reached
    sys.stdout.write(json.dumps(facts) + "\n")
    sys.stdout.flush()


class VkFailure(Exception):
    def __init__(self, stage, result):
        super().__init__(stage)
        self.stage, self.result = stage, result


def open_instance(vk, *extensions):
    """An instance (with these instance extensions) and its physical devices, in the loader's order."""
    enabled, keep = names(*extensions) if extensions else (None, None)
    app = ApplicationInfo(STYPE_APPLICATION_INFO, None, b"simdoctor", 1, b"simdoctor", 1, API_1_1)
    info = InstanceCreateInfo(STYPE_INSTANCE_CREATE_INFO, None, 0, ctypes.pointer(app), 0, None, len(extensions),
                              enabled)  # fmt: skip
    instance = ctypes.c_void_p()
    result = vk.vkCreateInstance(ctypes.byref(info), None, ctypes.byref(instance))
    del keep
    if result != VK_SUCCESS:
        raise VkFailure("vkCreateInstance", result)
    count = ctypes.c_uint32()
    result = vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None)
    if result != VK_SUCCESS:
        raise VkFailure("vkEnumeratePhysicalDevices", result)
    handles = (ctypes.c_void_p * count.value)()
    result = vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), handles)
    if result not in (VK_SUCCESS, VK_INCOMPLETE):
        raise VkFailure("vkEnumeratePhysicalDevices", result)
    return instance, list(handles)


def present(index):
    """Can device `index` present to $DISPLAY: presentation support, a surface, a swapchain."""
    done = {"ok": False, "index": index, "name": None, "presentation_support": None, "surface_support": None,
            "formats": None, "swapchain_images": None}  # fmt: skip

    def finish(name, result=None, error=None):
        known = RESULTS.get(result, None if result is None else str(result))
        done.update(stage=name, result=result, error=error or known)
        print(json.dumps(done))
        return 0 if done["ok"] else 1

    try:
        vk = ctypes.CDLL("libvulkan.so.1")
        x11 = ctypes.CDLL("libX11.so.6")
    except OSError as exc:
        return finish("load", error=str(exc))
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    display = x11.XOpenDisplay(None)
    if not display:
        return finish("XOpenDisplay", error="cannot open display %r" % os.environ.get("DISPLAY"))
    x11.XDefaultScreen.argtypes = [ctypes.c_void_p]
    x11.XRootWindow.restype = ctypes.c_ulong
    x11.XRootWindow.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XDefaultVisual.restype = ctypes.c_void_p
    x11.XDefaultVisual.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XVisualIDFromVisual.restype = ctypes.c_ulong
    x11.XVisualIDFromVisual.argtypes = [ctypes.c_void_p]
    x11.XCreateSimpleWindow.restype = ctypes.c_ulong
    x11.XCreateSimpleWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                                        ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_ulong]  # fmt: skip
    for name in ("XMapWindow", "XDestroyWindow"):
        getattr(x11, name).argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    screen = x11.XDefaultScreen(display)
    visual = x11.XVisualIDFromVisual(x11.XDefaultVisual(display, screen))
    window = x11.XCreateSimpleWindow(display, x11.XRootWindow(display, screen), 0, 0, 640, 480, 0, 0, 0)
    x11.XMapWindow(display, window)
    stage("x_window", window=window, visual=visual)

    try:
        instance, handles = open_instance(vk, "VK_KHR_surface", "VK_KHR_xlib_surface")
    except VkFailure as failure:
        return finish(failure.stage, failure.result)
    if index >= len(handles):
        return finish("select", error="no device %d: the loader lists %d" % (index, len(handles)))
    device = ctypes.c_void_p(handles[index])
    props = (ctypes.c_uint8 * 1024)()
    vk.vkGetPhysicalDeviceProperties(device, props)
    done["name"] = bytes(props)[20:276].split(b"\0", 1)[0].decode("utf-8", "replace")
    stage("device", name=done["name"])

    vk.vkGetInstanceProcAddr.restype = ctypes.c_void_p
    vk.vkGetInstanceProcAddr.argtypes = [ctypes.c_void_p, ctypes.c_char_p]

    def instance_fn(name, restype, *argtypes):
        address = vk.vkGetInstanceProcAddr(instance, name.encode())
        return ctypes.CFUNCTYPE(restype, *argtypes)(address) if address else None

    families = ctypes.c_uint32()
    vk.vkGetPhysicalDeviceQueueFamilyProperties(device, ctypes.byref(families), None)
    family_props = (QueueFamilyProperties * families.value)()
    vk.vkGetPhysicalDeviceQueueFamilyProperties(device, ctypes.byref(families), family_props)
    xlib_support = instance_fn("vkGetPhysicalDeviceXlibPresentationSupportKHR", ctypes.c_uint32,
                               ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_ulong)  # fmt: skip
    if xlib_support is None:
        return finish("vkGetPhysicalDeviceXlibPresentationSupportKHR", error="not exported by the loader")
    presenting = [q for q in range(families.value) if xlib_support(device, q, display, visual)]
    done["presentation_support"] = bool(presenting)
    stage("presentation_support", families=presenting)
    if not presenting:
        return finish("presentation_support", error="no queue family of this device can present to this display")
    family = next((q for q in presenting if family_props[q].queueFlags & QUEUE_GRAPHICS), presenting[0])

    create_surface = instance_fn("vkCreateXlibSurfaceKHR", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64))  # fmt: skip
    surface = ctypes.c_uint64()
    surface_info = XlibSurfaceCreateInfo(STYPE_XLIB_SURFACE_CREATE_INFO, None, 0, display, window)
    result = create_surface(instance, ctypes.addressof(surface_info), None, ctypes.byref(surface))
    if result != VK_SUCCESS:
        return finish("vkCreateXlibSurfaceKHR", result)
    stage("surface")
    supported = ctypes.c_uint32()
    surface_support = instance_fn("vkGetPhysicalDeviceSurfaceSupportKHR", ctypes.c_int, ctypes.c_void_p,
                                  ctypes.c_uint32, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint32))  # fmt: skip
    result = surface_support(device, family, surface, ctypes.byref(supported))
    done["surface_support"] = bool(supported.value) if result == VK_SUCCESS else None
    if result != VK_SUCCESS:
        return finish("vkGetPhysicalDeviceSurfaceSupportKHR", result)
    if not supported.value:
        return finish("vkGetPhysicalDeviceSurfaceSupportKHR", error="the presenting family cannot use the surface")
    caps = SurfaceCapabilities()
    capabilities = instance_fn("vkGetPhysicalDeviceSurfaceCapabilitiesKHR", ctypes.c_int, ctypes.c_void_p,
                               ctypes.c_uint64, ctypes.c_void_p)  # fmt: skip
    result = capabilities(device, surface, ctypes.addressof(caps))
    if result != VK_SUCCESS:
        return finish("vkGetPhysicalDeviceSurfaceCapabilitiesKHR", result)
    formats_fn = instance_fn("vkGetPhysicalDeviceSurfaceFormatsKHR", ctypes.c_int, ctypes.c_void_p, ctypes.c_uint64,
                             ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p)  # fmt: skip
    format_count = ctypes.c_uint32()
    result = formats_fn(device, surface, ctypes.byref(format_count), None)
    if result != VK_SUCCESS or not format_count.value:
        return finish("vkGetPhysicalDeviceSurfaceFormatsKHR", result if result != VK_SUCCESS else None,
                      None if result != VK_SUCCESS else "no surface format")  # fmt: skip
    formats = (SurfaceFormat * format_count.value)()
    formats_fn(device, surface, ctypes.byref(format_count), ctypes.addressof(formats))
    done["formats"] = format_count.value
    stage("surface_formats", formats=format_count.value)

    priority = ctypes.c_float(1.0)
    queue = DeviceQueueCreateInfo(STYPE_DEVICE_QUEUE_CREATE_INFO, None, 0, family, 1, ctypes.pointer(priority))
    device_extensions, keep_device = names("VK_KHR_swapchain")
    device_info = DeviceCreateInfo(STYPE_DEVICE_CREATE_INFO, None, 0, 1, ctypes.pointer(queue), 0, None, 1,
                                   device_extensions, None)  # fmt: skip
    logical = ctypes.c_void_p()
    result = vk.vkCreateDevice(device, ctypes.byref(device_info), None, ctypes.byref(logical))
    if result != VK_SUCCESS:
        return finish("vkCreateDevice", result)
    stage("logical_device")
    vk.vkGetDeviceProcAddr.restype = ctypes.c_void_p
    vk.vkGetDeviceProcAddr.argtypes = [ctypes.c_void_p, ctypes.c_char_p]

    def device_fn(name, restype, *argtypes):
        return ctypes.CFUNCTYPE(restype, *argtypes)(vk.vkGetDeviceProcAddr(logical, name.encode()))

    extent = caps.currentExtent if caps.currentExtent[0] != 0xFFFFFFFF else (640, 480)
    images = max(caps.minImageCount, 2)
    images = min(images, caps.maxImageCount) if caps.maxImageCount else images
    alpha = caps.supportedCompositeAlpha & -caps.supportedCompositeAlpha or COMPOSITE_ALPHA_OPAQUE
    chain_info = SwapchainCreateInfo(STYPE_SWAPCHAIN_CREATE_INFO, None, 0, surface.value, images, formats[0].format,
                                     formats[0].colorSpace, (ctypes.c_uint32 * 2)(*extent), 1,
                                     IMAGE_USAGE_COLOR_ATTACHMENT, 0, 0, None, caps.currentTransform, alpha,
                                     PRESENT_MODE_FIFO, 1, 0)  # fmt: skip
    swapchain = ctypes.c_uint64()
    create_swapchain = device_fn("vkCreateSwapchainKHR", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64))  # fmt: skip
    result = create_swapchain(logical, ctypes.addressof(chain_info), None, ctypes.byref(swapchain))
    if result != VK_SUCCESS:
        return finish("vkCreateSwapchainKHR", result)
    chain_images = ctypes.c_uint32()
    get_images = device_fn("vkGetSwapchainImagesKHR", ctypes.c_int, ctypes.c_void_p, ctypes.c_uint64,
                           ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p)  # fmt: skip
    get_images(logical, swapchain, ctypes.byref(chain_images), None)
    done["swapchain_images"] = chain_images.value
    done["ok"] = chain_images.value > 0
    destroy = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p
    device_fn("vkDestroySwapchainKHR", None, *destroy)(logical, swapchain, None)
    vk.vkDestroyDevice(logical, None)
    instance_fn("vkDestroySurfaceKHR", None, *destroy)(instance, surface, None)
    vk.vkDestroyInstance(instance, None)
    x11.XDestroyWindow(display, window)
    del keep_device
    return finish("vkCreateSwapchainKHR", error=None if done["ok"] else "the swapchain has no images")


def main():
    if sys.argv[1:2] == ["--present"]:
        return present(int(sys.argv[2]))
    try:
        vk = ctypes.CDLL("libvulkan.so.1")
    except OSError as exc:
        print(json.dumps({"ok": False, "stage": "load", "result": None, "error": str(exc)}))
        return 1
    try:
        instance, handles = open_instance(vk)
    except VkFailure as failure:
        return fail(failure.stage, failure.result)

    vk.vkGetInstanceProcAddr.restype = ctypes.c_void_p
    address = vk.vkGetInstanceProcAddr(instance, b"vkGetPhysicalDeviceProperties2")
    get_properties2 = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(address) if address else None

    devices = []
    for index in range(len(handles)):
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
