from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import UserProfile


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts.create_profile")
def create_profile(sender, instance, created: bool, **kwargs) -> None:
    if created:
        UserProfile.objects.get_or_create(user=instance)
